"""Live input (cameras and streams): a grabber thread that keeps only the newest frame.

Live sources must not hand out stale, buffered frames: the grabber reads as fast as the device
delivers and overwrites the one slot; the consumer takes the newest frame when it is ready for
one (frames it had no time for are counted as skipped, never queued). Opening and reading have
timeouts; a lost signal is retried with exponential backoff a stated number of times, then the
source ends cleanly with the reason in :attr:`LiveCapture.stop_reason`.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import cv2

from .frames import Frame, SourceError

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class LiveOptions:
    open_timeout: float = 5.0  # seconds to wait for the device/stream to open
    read_timeout: float = 5.0  # seconds without a new frame before the signal counts as lost
    reconnect_tries: int = 5  # reconnection attempts after a loss, then the source ends
    backoff_start: float = 0.5  # seconds before the first reconnection; doubles each try
    backoff_max: float = 8.0


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
        self.name = f"camera:{target}" if isinstance(target, int) else str(target)
        self.options = options or LiveOptions()
        self._factory = capture_factory
        self._cond = threading.Condition()
        self._latest = None  # (image, monotonic timestamp)
        self._seq = 0
        self._taken = 0  # the sequence number of the last frame handed out
        self._stop = threading.Event()
        self._done = False
        self.stop_reason: str | None = None
        self.reconnects = 0
        self.grabbed = 0
        self.skipped = 0
        capture, error = _open_with_timeout(capture_factory, target, self.options.open_timeout)
        if capture is None:
            kind = "camera" if isinstance(target, int) else "stream"
            hint = (
                "check the index (cameras are usually 0, 1, ...) and that no other program holds it"
                if kind == "camera"
                else "check the URL, the network, and that the server is up"
            )
            raise SourceError(f"{kind} {target} {error}; {hint}")
        self._capture = capture
        fps = capture.get(cv2.CAP_PROP_FPS) if hasattr(capture, "get") else 0.0
        # Only for the output video's frame rate; measured fps always come from timestamps.
        self.nominal_fps = fps if fps and 0 < fps < 1000 else 30.0
        self._thread = threading.Thread(target=self._grab_loop, name=f"edgerun-grab-{self.name}", daemon=True)
        self._thread.start()

    def _publish(self, image) -> None:
        with self._cond:
            if self._latest is not None and self._seq > self._taken:
                self.skipped += 1
            self._latest = (image, time.monotonic())
            self._seq += 1
            self.grabbed += 1
            self._cond.notify_all()

    def _reconnect(self) -> bool:
        delay = self.options.backoff_start
        for attempt in range(1, self.options.reconnect_tries + 1):
            if self._stop.wait(delay):
                return False
            logger.warning(
                "%s: signal lost; reconnecting (try %d of %d)",
                self.name,
                attempt,
                self.options.reconnect_tries,
            )
            capture, error = _open_with_timeout(self._factory, self.target, self.options.open_timeout)
            if capture is not None:
                self._capture = capture
                self.reconnects += 1
                logger.info("%s: reconnected", self.name)
                return True
            logger.warning("%s: reconnection failed (%s)", self.name, error)
            delay = min(delay * 2, self.options.backoff_max)
        self.stop_reason = f"signal lost and {self.options.reconnect_tries} reconnection tries failed"
        return False

    def _grab_loop(self) -> None:
        try:
            while not self._stop.is_set():
                ok, image = self._capture.read()
                if self._stop.is_set():
                    break
                if ok and image is not None:
                    self._publish(image)
                    continue
                self._capture.release()
                if not self._reconnect():
                    break
        finally:
            with self._cond:
                self._done = True
                self._cond.notify_all()

    def __iter__(self) -> Iterator[Frame]:
        index = 0
        while True:
            with self._cond:
                got = self._cond.wait_for(
                    lambda: self._seq > self._taken or self._done or self._stop.is_set(),
                    timeout=self.options.read_timeout,
                )
                if self._stop.is_set():
                    return
                if not got:
                    self.stop_reason = f"no frame for {self.options.read_timeout:g} s (stream stalled)"
                    logger.warning("%s: %s; stopping", self.name, self.stop_reason)
                    self._stop.set()
                    return
                if self._seq <= self._taken:  # finished with no new frame
                    if self.stop_reason:
                        logger.warning("%s: %s; stopping", self.name, self.stop_reason)
                    return
                image, stamp = self._latest
                self._taken = self._seq
            yield Frame(image, self.name, index, stamp)
            index += 1

    def close(self) -> None:
        self._stop.set()
        with self._cond:
            self._cond.notify_all()
        self._thread.join(timeout=self.options.read_timeout + 1)
        try:
            self._capture.release()
        except Exception:  # noqa: BLE001 - releasing a broken capture must not mask the real error
            logger.debug("%s: release failed", self.name, exc_info=True)
