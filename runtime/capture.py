"""Live input (cameras and streams): a grabber thread that keeps only the newest frame.

Live sources must not hand out stale, buffered frames: the grabber reads as fast as the device
delivers and overwrites the one slot; the consumer takes the newest frame when it is ready for
one (frames it had no time for are counted as skipped, never queued).

One supervisor thread owns the connection. The signal counts as lost when a read fails or when
no frame has come for ``read_timeout`` seconds (a read that blocks is abandoned: its thread
releases the old capture whenever the read returns). After a loss it reconnects up to
``reconnect_tries`` times, waiting ``backoff_start`` seconds before the first try and twice as
long before each next one (at most ``backoff_max``): with the defaults 0.5, 1, 2, 4 and 8 s, so a
server that is back within about 15 s is reached. The consumer waits as long as reconnection
goes on: the read timeout never ends the source by itself. When every try has failed the source
ends with the reason in :attr:`LiveCapture.stop_reason` (``edgerun run`` exits 4).

The tries are one budget for an outage: a reconnection that opens the stream spends its try too,
and the budget (and the backoff) is whole again only once a connection has delivered frames for
``stable_after`` seconds. A server that answers, sends a few frames and drops or stalls each time
therefore ends the source after ``reconnect_tries`` reconnections instead of looping forever.

An http(s) URL whose first connection sends one picture and closes, answering with anything but a
multipart stream (a camera's ``snapshot.jpg``), is read as that one image: no reconnection.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import cv2

from .frames import Frame, SourceError
from .httpprobe import HttpAnswer, ask, is_http, shown

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class LiveOptions:
    open_timeout: float = 5.0  # seconds to wait for the device/stream to open
    read_timeout: float = 5.0  # seconds without a new frame before the signal counts as lost
    reconnect_tries: int = 5  # reconnection attempts after a loss, then the source ends
    backoff_start: float = 0.5  # seconds before the first reconnection; doubles each try
    backoff_max: float = 8.0
    stable_after: float = 10.0  # seconds of frames on one connection that make the tries whole again


def _open_with_timeout(factory: Callable, target, timeout: float):
    """Open a capture in a helper thread: a dead stream URL can block for minutes."""
    result: dict = {}

    def opener() -> None:
        try:
            result["capture"] = factory(target)
        except Exception as exc:  # noqa: BLE001 - report any failure to the caller
            result["error"] = exc

    thread = threading.Thread(target=opener, name="edgerun-open", daemon=True)
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        return None, f"did not open within {timeout:g} s"
    if "error" in result:
        return None, f"failed to open: {result['error']}"
    capture = result["capture"]
    if not capture.isOpened():
        capture.release()
        return None, "could not be opened"
    return capture, None


class LiveCapture:
    """A camera index or stream URL as a :class:`~edgerun.runtime.sources.Source`."""

    live = True
    expected = None  # a live source has no end to count towards

    def __init__(
        self,
        target: int | str,
        options: LiveOptions | None = None,
        capture_factory: Callable = cv2.VideoCapture,
    ) -> None:
        self.target = target
        self.name = f"camera:{target}" if isinstance(target, int) else shown(str(target))
        self.options = options or LiveOptions()
        self._factory = capture_factory
        self._cond = threading.Condition()
        self._latest = None  # (image, monotonic timestamp)
        self._seq = 0
        self._taken = 0  # the sequence number of the last frame handed out
        self._stop = threading.Event()
        self._done = False
        self._generation = 0  # which capture is current; an abandoned reader sees it changed
        self._lost: str | None = None  # why the current capture is lost, set by its reader
        self._last_frame = time.monotonic()
        self._first_frame: float | None = None  # when the current connection gave its first frame
        self._frames_now = 0  # frames the current connection gave
        self._tries_spent = 0  # of the budget, since the stream last ran for stable_after seconds
        self._reopened = 0  # tries of this budget that opened the stream (which then did not last)
        self._outage_start: float | None = None
        self._last_answer = ""  # what an http(s) server last answered a failed reconnection
        self._reader: threading.Thread | None = None
        self.stop_reason: str | None = None
        self.reconnects = 0
        self.grabbed = 0
        self.skipped = 0
        capture, error = _open_with_timeout(capture_factory, target, self.options.open_timeout)
        if capture is None:
            raise SourceError(_open_failure(target, error, self.options.open_timeout))
        self._capture = capture
        fps = capture.get(cv2.CAP_PROP_FPS) if hasattr(capture, "get") else 0.0
        # Only for the output video's frame rate; measured fps always come from timestamps.
        self.nominal_fps = fps if fps and 0 < fps < 1000 else 30.0
        self._thread = threading.Thread(target=self._supervise, name=f"edgerun-live-{self.name}", daemon=True)
        self._thread.start()

    def _publish(self, image, generation: int) -> None:
        with self._cond:
            if generation != self._generation:
                return  # a frame from an abandoned capture
            if self._latest is not None and self._seq > self._taken:
                self.skipped += 1
            self._last_frame = time.monotonic()
            if self._first_frame is None:
                self._first_frame = self._last_frame
            self._frames_now += 1
            self._latest = (image, self._last_frame)
            self._seq += 1
            self.grabbed += 1
            self._cond.notify_all()

    def _read_loop(self, capture, generation: int) -> None:
        """Read one capture until it fails, is abandoned, or the source stops; then release it."""
        try:
            while not self._stop.is_set() and generation == self._generation:
                ok, image = capture.read()
                if self._stop.is_set() or generation != self._generation:
                    break
                if not ok or image is None:
                    with self._cond:
                        if generation == self._generation:
                            self._lost = "the read failed (signal lost)"
                            self._cond.notify_all()
                    break
                self._publish(image, generation)
        except Exception as exc:  # noqa: BLE001 - a capture that raises is a lost signal
            with self._cond:
                if generation == self._generation:
                    self._lost = f"the read failed ({exc})"
                    self._cond.notify_all()
        finally:
            try:
                capture.release()
            except Exception:  # noqa: BLE001 - releasing a broken capture must not mask the real error
                logger.debug("%s: release failed", self.name, exc_info=True)

    def _watch(self) -> str | None:
        """Wait while frames come; the reason the signal is lost, or None when stopped."""
        timeout = self.options.read_timeout
        with self._cond:
            while not self._stop.is_set():
                if self._lost is not None:
                    return self._lost
                idle = time.monotonic() - self._last_frame
                if idle >= timeout:
                    return f"no frame for {timeout:g} s (stream stalled)"
                self._cond.wait(min(timeout - idle, 0.5))
        return None

    def _reconnect(self, reason: str) -> bool:
        """Spend tries of the budget until one opens the stream; False when none is left."""
        tries = self.options.reconnect_tries
        if self._outage_start is None:
            self._outage_start = time.monotonic()
        while self._tries_spent < tries:
            self._tries_spent += 1
            delay = min(self.options.backoff_start * 2 ** (self._tries_spent - 1), self.options.backoff_max)
            if self._stop.wait(delay):
                return False
            logger.warning("%s: %s; reconnecting (try %d of %d)", self.name, reason, self._tries_spent, tries)
            capture, error = _open_with_timeout(self._factory, self.target, self.options.open_timeout)
            if capture is not None:
                self._capture = capture
                self.reconnects += 1
                self._reopened += 1
                logger.info("%s: reconnected", self.name)
                return True
            answer = _server_answer(self.target, self.options.open_timeout)  # '' but for http(s)
            self._last_answer = answer or self._last_answer
            logger.warning("%s: reconnection failed (%s%s)", self.name, error, f": {answer}" if answer else "")
        reopened = (
            f" ({self._reopened} of them opened it, but it never then gave frames for {self.options.stable_after:g} s)"
            if self._reopened
            else ""
        )
        last = f"; last, {self._last_answer}" if self._last_answer else ""
        self.stop_reason = (
            f"stream lost: {reason}, and {tries} reconnection tries failed over "
            f"{time.monotonic() - self._outage_start:.1f} s{reopened}{last}"
        )
        return False

    def _ended(self) -> bool:
        """After a loss: True when the connection was a snapshot (one picture, then closed), after
        making the budget whole again if the connection lasted (see the module docstring)."""
        with self._cond:
            lost_by_read, frames = self._lost is not None, self._frames_now
            lasted = self._first_frame is not None and self._last_frame - self._first_frame >= self.options.stable_after
        if lasted:
            self._tries_spent, self._reopened, self._outage_start = 0, 0, None
        if not (is_http(self.target) and self.reconnects == 0 and lost_by_read and frames == 1):
            return False
        answer = ask(self.target, min(self.options.open_timeout, 2.0))
        if isinstance(answer, HttpAnswer) and answer.status == 200 and not answer.streams:
            logger.info(
                "%s: the server sent one picture (%s) and closed the connection: read as one image, "
                "not a stream; for live video give the camera's MJPEG or RTSP URL",
                self.name,
                answer.content_type or "no content type",
            )
            return True
        return False

    def _supervise(self) -> None:
        try:
            while not self._stop.is_set():
                with self._cond:
                    self._lost = None
                    self._last_frame = time.monotonic()
                    self._first_frame, self._frames_now = None, 0
                    generation = self._generation
                self._reader = threading.Thread(
                    target=self._read_loop,
                    args=(self._capture, generation),
                    name=f"edgerun-grab-{self.name}",
                    daemon=True,
                )
                self._reader.start()
                reason = self._watch()
                if reason is None:
                    break
                with self._cond:
                    self._generation += 1  # the reader is abandoned (it may still be blocked in read)
                if self._ended() or not self._reconnect(reason):
                    break
        finally:
            with self._cond:
                self._done = True
                self._cond.notify_all()

    def __iter__(self) -> Iterator[Frame]:
        index = 0
        while True:
            with self._cond:
                # No timeout ends the wait: the supervisor decides when the signal is lost for good.
                while not (self._seq > self._taken or self._done or self._stop.is_set()):
                    self._cond.wait(0.5)
                if self._stop.is_set():
                    return
                if self._seq <= self._taken:  # finished with no new frame
                    if self.stop_reason:
                        logger.warning("%s ended early: %s; stopping", self.name, self.stop_reason)
                    return
                image, stamp = self._latest
                self._taken = self._seq
            yield Frame(image, self.name, index, stamp)
            index += 1

    def close(self) -> None:
        self._stop.set()
        with self._cond:
            self._cond.notify_all()
        self._thread.join(timeout=self.options.open_timeout + 1)
        reader = self._reader
        if reader is not None:
            reader.join(timeout=1.0)  # a read blocked in the driver is left to its daemon thread


def _open_failure(target, error: str, timeout: float) -> str:
    """Why a camera or stream did not open, with what to check; for an http(s) URL, what its
    server answers when asked directly (OpenCV does not say). The URL's password is not shown."""
    if isinstance(target, int):
        return (
            f"camera {target} {error}; check the index (cameras are usually 0, 1, ...) "
            "and that no other program holds it"
        )
    answer = _server_answer(target, timeout)
    if answer:
        return f"stream {shown(target)} {error}: {answer}"
    return f"stream {shown(target)} {error}; check the URL, the network, and that the server is up"


def _server_answer(url: str, timeout: float) -> str:
    """What an http(s) URL's server answers, asked directly, as a clause with what to check; ''
    for other URLs."""
    if not is_http(url):
        return ""
    answer = ask(url, min(timeout, 2.0))
    if isinstance(answer, HttpAnswer) and answer.status >= 300:
        return f"the server answered {answer.describe(credentials=shown(url) != url)}"
    if isinstance(answer, HttpAnswer):
        kind = answer.content_type or "no content type"
        return f"the server answered {answer.status} with {kind}, which OpenCV cannot read as video or an image"
    why = answer[:1].lower() + answer[1:]
    return f"no answer from the server ({why}); check the URL, the network, and that the server is up"
