"""Reconnection makes the documented tries with the documented backoff whatever the read
timeout, against a real MJPEG server on 127.0.0.1 that goes away and comes back."""

from __future__ import annotations

import threading
import time

import cv2
import pytest
from reliability_cases import MjpegServer

from edgerun.runtime.capture import LiveCapture, LiveOptions
from edgerun.runtime.model import Model, SessionConfig
from edgerun.runtime.run import EXIT_INCOMPLETE, Run, RunConfig


def _mjpeg_works() -> bool:
    server = MjpegServer(frames=2).start()
    try:
        capture = cv2.VideoCapture(server.url)
        ok = capture.isOpened() and capture.read()[0]
        capture.release()
        return bool(ok)
    finally:
        server.stop()


@pytest.fixture(scope="module")
def mjpeg():
    if not _mjpeg_works():
        pytest.skip("this OpenCV cannot read an HTTP MJPEG stream (no FFmpeg backend)")
    return MjpegServer


def test_a_server_back_within_the_backoff_is_reached(mjpeg, mnist_cnn):
    server = mjpeg(frames=20).start()
    port = server.port
    # The read timeout (0.5 s) is far shorter than the tries (0.5 + 1 + 2 s): they all still happen.
    options = LiveOptions(open_timeout=2.0, read_timeout=0.5, reconnect_tries=3, backoff_start=0.5, backoff_max=2.0)
    source = LiveCapture(server.url, options)

    def outage():
        time.sleep(1.5)  # 20 frames at 20 fps, then the server goes away for 2 s
        server.stop()
        time.sleep(2.0)
        back = mjpeg(port=port, frames=20).start()
        time.sleep(2.0)
        back.stop()  # and away for good: the tries run out

    threading.Thread(target=outage, daemon=True).start()
    model = Model.load(mnist_cnn, SessionConfig(provider="cpu", threads=1))
    with Run(model, source, config=RunConfig(progress=False)) as run:
        results = list(run)
    assert source.reconnects >= 1
    assert len(results) > 20  # frames from both connections
    assert "3 reconnection tries failed" in source.stop_reason
    assert run.exit_code == EXIT_INCOMPLETE


def test_read_timeout_does_not_cut_the_tries_short():
    opened = []

    class Dead:
        def isOpened(self):  # noqa: N802 - cv2's name
            return False

        def release(self):
            return None

    class OneFrame:
        def __init__(self):
            self.sent = False

        def isOpened(self):  # noqa: N802 - cv2's name
            return True

        def read(self):
            if self.sent:
                return False, None
            self.sent = True
            import numpy as np

            return True, np.zeros((8, 8, 3), np.uint8)

        def release(self):
            return None

    def factory(target):
        opened.append(time.monotonic())
        return OneFrame() if len(opened) == 1 else Dead()

    options = LiveOptions(read_timeout=0.1, reconnect_tries=4, backoff_start=0.1, backoff_max=0.4)
    source = LiveCapture("rtsp://x", options, capture_factory=factory)
    frames = list(source)
    source.close()
    assert len(frames) == 1 and len(opened) == 5  # the first open and all four tries
    gaps = [b - a for a, b in zip(opened[1:], opened[2:], strict=False)]
    assert gaps[0] < gaps[1] < gaps[2] + 0.05  # backoff doubles (0.2, 0.4, 0.4 s)
    assert "4 reconnection tries failed" in source.stop_reason


def test_a_missing_camera_is_one_line_without_opencvs_own_warnings(edgerun, mnist_cnn):
    """OpenCV logs '[ WARN:0@...] cap_v4l.cpp ...' when a camera index has no device; edgerun's
    own message says it, so the command quiets OpenCV's log (-v shows it again)."""
    proc = edgerun("-q", "run", mnist_cnn, "--source", "97")
    err = proc.stderr.decode()
    assert proc.returncode == 2 and "camera 97 could not be opened" in err, err
    assert "WARN" not in err and len(err.strip().splitlines()) == 1, err


FAST = LiveOptions(open_timeout=2.0, read_timeout=0.5, reconnect_tries=2, backoff_start=0.05, backoff_max=0.1)


def _read_for(source, seconds: float) -> list:
    """The frames ``source`` gives within ``seconds`` (it may end sooner); then it is closed."""
    frames, deadline = [], time.monotonic() + seconds
    for frame in source:
        frames.append(frame)
        if time.monotonic() > deadline:
            break
    source.close()
    return frames


def test_a_snapshot_url_is_read_as_one_image(mjpeg, mnist_cnn, tmp_path, edgerun):
    """A camera's snapshot.jpg sends one JPEG and closes: one record and exit 0, not a stream
    that reconnects (and repeats the picture) forever."""
    server = mjpeg(kind="snapshot").start()
    try:
        url = server.url.replace("stream.mjpg", "snapshot.jpg")
        proc = edgerun("run", mnist_cnn, "--source", url, "--json", tmp_path / "r.jsonl", timeout=30)
    finally:
        server.stop()
    err = proc.stderr.decode()
    assert proc.returncode == 0, err
    assert len((tmp_path / "r.jsonl").read_text().splitlines()) == 1
    assert "read as one image" in err and "reconnect" not in err, err


def test_reopens_that_give_a_few_frames_and_stall_spend_the_tries(mjpeg):
    """5 frames, then silence, on every connection: each reconnection opens the stream, so each
    used to start the tries afresh and it looped forever. Now the budget is spent and it ends."""
    server = mjpeg(frames=5, kind="stall").start()
    source = LiveCapture(server.url, FAST)
    start = time.monotonic()
    try:
        _read_for(source, 20)
    finally:
        server.stop()
    assert source.stop_reason is not None, "still reconnecting after 20 s"
    assert "stalled" in source.stop_reason and "2 reconnection tries failed" in source.stop_reason
    assert "2 of them opened it, but it never then gave frames for 10 s" in source.stop_reason
    assert server.requests == 3 and time.monotonic() - start < 10


def test_a_flaky_stream_that_runs_between_drops_keeps_recovering(mjpeg):
    """Each connection gives frames for 0.45 s, past stable_after (0.3 s), then drops: every drop
    finds the tries whole again, so the stream keeps coming back beyond reconnect_tries."""
    server = mjpeg(frames=10).start()
    options = LiveOptions(open_timeout=2.0, read_timeout=0.5, reconnect_tries=1, backoff_start=0.05, stable_after=0.3)
    source = LiveCapture(server.url, options)
    try:
        frames = _read_for(source, 3.0)
    finally:
        server.stop()
    assert source.stop_reason is None and source.reconnects >= 3 and len(frames) > 20


def test_an_http_error_says_what_the_server_answered(mjpeg, mnist_cnn, edgerun):
    server = mjpeg(status=404).start()
    try:
        proc = edgerun("-q", "run", mnist_cnn, "--source", server.url, timeout=30)
    finally:
        server.stop()
    err = proc.stderr.decode()
    assert proc.returncode == 2, err
    assert "the server answered 404 Not Found; check the URL's path" in err, err


def test_a_password_in_a_stream_url_is_never_shown(mjpeg, mnist_cnn, edgerun, tmp_path):
    """Cameras take rtsp://user:password@host/...: the password stayed in every log line, error
    message and record's source. It is shown as ***, and still sent to the server."""
    server = mjpeg(frames=5).start()
    missing = mjpeg(status=404).start()
    try:
        url = server.url.replace("://", "://viewer:s3cret-pw@", 1)
        proc = edgerun(
            "run", mnist_cnn, "--source", url, "--max-frames", "3", "--json", tmp_path / "r.jsonl", timeout=60
        )
        bad = edgerun("run", mnist_cnn, "--source", missing.url.replace("://", "://viewer:s3cret-pw@", 1), timeout=30)
    finally:
        server.stop()
        missing.stop()
    records = (tmp_path / "r.jsonl").read_text()
    shown = proc.stdout.decode() + proc.stderr.decode() + records + bad.stdout.decode() + bad.stderr.decode()
    assert records and "viewer:***@127.0.0.1" in records
    assert bad.returncode == 2 and "viewer:***@" in bad.stderr.decode() and "404" in bad.stderr.decode()
    assert "s3cret" not in shown


def test_the_probe_follows_no_redirect_so_credentials_stay_with_their_host():
    """The probe (urllib) followed a 302 to another host and sent it the URL's Basic credentials."""
    import http.server

    from edgerun.runtime.httpprobe import ask

    seen: list[str | None] = []

    class Other(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - http.server's name
            seen.append(self.headers.get("Authorization"))
            self.send_error(404)

        def log_message(self, *args):
            pass

    other = http.server.HTTPServer(("127.0.0.1", 0), Other)

    class Redirect(Other):
        def do_GET(self):  # noqa: N802
            self.send_response(302)
            self.send_header("Location", f"http://localhost:{other.server_port}/x.mjpg")
            self.end_headers()

    first = http.server.HTTPServer(("127.0.0.1", 0), Redirect)
    threads = [threading.Thread(target=s.serve_forever, daemon=True) for s in (other, first)]
    for t in threads:
        t.start()
    try:
        answer = ask(f"http://viewer:s3cret@127.0.0.1:{first.server_port}/old.mjpg", timeout=5)
    finally:
        for s in (other, first):
            s.shutdown()
            s.server_close()
    assert seen == [] and answer.status == 302
    assert f"a redirect to http://localhost:{other.server_port}/x.mjpg; give that URL itself" in answer.describe()


def test_passwords_are_hidden_in_urls_that_do_not_parse_and_in_list_files(mnist_cnn, tmp_path, edgerun):
    from edgerun.runtime.httpprobe import shown

    assert shown("http://admin:S3cret/PW@127.0.0.1:18113/x") == "http://admin:***@127.0.0.1:18113/x"
    assert shown("rtsp://admin:S3cretPW@[::1/live") == "rtsp://admin:***@[::1/live"
    assert shown("rtsp://camera.local/live") == "rtsp://camera.local/live"
    listed = tmp_path / "urls.txt"
    listed.write_text("http://admin:S3cretPW@127.0.0.1:1/x.mjpg\n")
    proc = edgerun("-q", "run", mnist_cnn, "--source", listed)
    err = proc.stderr.decode()
    assert proc.returncode == 2 and "line 1: http://admin:***@127.0.0.1:1/x.mjpg is a URL" in err
    assert "S3cret" not in err + proc.stdout.decode()


def test_an_upper_case_scheme_opens_the_stream(mjpeg, mnist_cnn, edgerun, tmp_path):
    """HTTP://host/... reached OpenCV unchanged and failed ('the server answered 200 with
    multipart/x-mixed-replace, which OpenCV cannot read'): schemes are case-insensitive."""
    server = mjpeg(frames=3).start()
    try:
        url = server.url.replace("http://", "HTTP://", 1)
        proc = edgerun("-q", "run", mnist_cnn, "--source", url, "--max-frames", "2", "--json", tmp_path / "r.jsonl")
    finally:
        server.stop()
    assert proc.returncode == 0, proc.stderr.decode()
    assert len((tmp_path / "r.jsonl").read_text().splitlines()) == 2


def test_failed_reconnections_say_what_the_server_answered(mjpeg):
    """The tries logged 'reconnection failed (could not be opened)' while the server answered
    404 each time: the answer is in each line and in the stop reason."""
    server = mjpeg(frames=3).start()
    port = server.port
    options = LiveOptions(open_timeout=2.0, read_timeout=0.5, reconnect_tries=2, backoff_start=0.2, backoff_max=0.4)
    source = LiveCapture(server.url, options)
    gone = None
    try:
        frames = iter(source)
        next(frames)
        server.stop()
        gone = mjpeg(port=port, status=404).start()
        list(frames)
    finally:
        source.close()
        if gone is not None:
            gone.stop()
    assert "2 reconnection tries failed" in source.stop_reason
    assert "last, the server answered 404 Not Found; check the URL's path" in source.stop_reason
