from __future__ import annotations

import re
import threading
import time

import cv2
import numpy as np
import pytest

from edgerun.runtime.capture import LiveCapture, LiveOptions
from edgerun.runtime.sources import ImageFiles, SourceError, VideoFile, open_source, source_kind


def write_video(path, frames=20, size=(64, 48), fps=10.0):
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, size)
    for i in range(frames):
        image = np.full((size[1], size[0], 3), i * 10 % 255, np.uint8)
        writer.write(image)
    writer.release()
    return path


@pytest.fixture
def images(tmp_path):
    for i in range(3):
        cv2.imwrite(str(tmp_path / f"img{i}.png"), np.full((10, 12), i * 50, np.uint8))
    (tmp_path / "notes.md").write_text("not an image")
    return tmp_path


@pytest.mark.parametrize(
    ("spec", "kind"),
    [
        ("0", "camera"),
        ("rtsp://cam/1", "stream"),
        ("http://x/y.mjpg", "stream"),
        ("a/*.png", "glob"),
        ("list.txt", "list"),
        ("v.mp4", "video"),
        ("p.JPG", "image"),
        ("x.xyz", "unknown"),
    ],
)
def test_source_kinds(spec, kind):
    assert source_kind(spec) == kind


def test_directory_glob_image_and_list(images):
    assert [f.index for f in open_source(str(images))] == [0, 1, 2]
    assert len(list(open_source(str(images / "*.png")))) == 3
    single = list(open_source(str(images / "img1.png")))
    assert len(single) == 1 and single[0].image.shape == (10, 12)
    listing = images / "list.txt"
    listing.write_text("img0.png\n# a comment\nmissing.png\nimg2.png\n")
    frames = list(open_source(str(listing)))
    assert [f.error is None for f in frames] == [True, False, True]
    assert "does not exist" in frames[1].error


def test_video_file_gives_every_frame_with_timestamps(tmp_path):
    source = open_source(str(write_video(tmp_path / "v.avi", frames=20)))
    assert isinstance(source, VideoFile)
    frames = list(source)
    assert [f.index for f in frames] == list(range(20))
    stamps = [f.timestamp for f in frames]
    assert stamps == sorted(stamps) and stamps[-1] > stamps[0]


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda d: str(d / "nope.png"), "does not exist"),
        (lambda d: (d / "empty").mkdir() or str(d / "empty"), "no images found"),
        (lambda d: str(d / "*.jpg"), "no images match"),
        (lambda d: (d / "x.xyz").write_text("?") and str(d / "x.xyz"), "unsupported format"),
        (
            lambda d: (d / "v.mp4").write_text("not a video") and str(d / "v.mp4"),
            "could not be opened as a video",
        ),
        (lambda d: (d / "l.txt").write_text("\n") and str(d / "l.txt"), "lists no paths"),
    ],
    ids=["missing", "empty-dir", "glob-nothing", "unsupported", "not-a-video", "empty-list"],
)
def test_sources_that_cannot_open(tmp_path, make, message):
    with pytest.raises(SourceError, match=message):
        open_source(make(tmp_path))


def test_a_printf_sequence_name_suggests_the_glob_that_reads_it(tmp_path):
    for i in range(3):
        cv2.imwrite(str(tmp_path / f"img_{i:04d}.png"), np.full((10, 12), i * 50, np.uint8))
    glob = f"{tmp_path}/img_*.png"
    with pytest.raises(
        SourceError,
        match=re.escape(f"img_%04d.png does not exist; for a numbered sequence of images give a glob: '{glob}'"),
    ):
        open_source(f"{tmp_path}/img_%04d.png")
    assert len(list(open_source(glob))) == 3  # the suggestion reads the sequence


def test_unreadable_images_give_error_frames(tmp_path):
    (tmp_path / "zero.png").write_bytes(b"")
    (tmp_path / "text.png").write_text("hello")
    noise = np.random.default_rng(0).integers(0, 256, (60, 60, 3), dtype=np.uint8)
    jpg = cv2.imencode(".jpg", noise)[1].tobytes()
    png = cv2.imencode(".png", noise)[1].tobytes()
    (tmp_path / "cut.jpg").write_bytes(jpg[: len(jpg) // 2])
    (tmp_path / "cut.png").write_bytes(png[: len(png) // 2])
    (tmp_path / "ok.png").write_bytes(png)
    (tmp_path / "image.gif").write_bytes(b"GIF89a" + bytes(40))
    frames = list(ImageFiles(sorted(tmp_path.iterdir()), "t"))
    assert len(frames) == 6
    errors = {f.source.rsplit("/", 1)[-1]: f.error for f in frames}
    assert "empty (0 bytes)" in errors["zero.png"]
    assert "could not be decoded" in errors["text.png"]
    assert "truncated JPEG" in errors["cut.jpg"] and "truncated PNG" in errors["cut.png"]
    assert "could not be decoded" in errors["image.gif"]
    assert errors["ok.png"] is None


def test_huge_images_are_refused_before_decoding(tmp_path):
    import struct
    import zlib

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", 20000, 20000, 8, 0, 0, 0, 0)
    (tmp_path / "huge.png").write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IEND", b""))
    frame = next(iter(ImageFiles([tmp_path / "huge.png"], "t")))
    assert "20000x20000 pixels, over the 64,000,000-pixel limit" in frame.error


class FakeCapture:
    """A camera or stream stand-in: frames on a timer, failures on request."""

    def __init__(self, frames=10, fail_after=None, interval=0.005, opened=True):
        self.frames, self.fail_after, self.interval, self.opened = frames, fail_after, interval, opened
        self.read_count = 0
        self.released = False

    def isOpened(self):  # noqa: N802 - cv2's name
        return self.opened

    def read(self):
        time.sleep(self.interval)
        if self.fail_after is not None and self.read_count >= self.fail_after:
            return False, None
        if self.read_count >= self.frames:
            return False, None
        self.read_count += 1
        return True, np.full((8, 8, 3), self.read_count, np.uint8)

    def release(self):
        self.released = True


FAST = LiveOptions(open_timeout=1.0, read_timeout=1.0, reconnect_tries=2, backoff_start=0.01, backoff_max=0.02)


def test_live_capture_keeps_only_the_newest_frame():
    cap = FakeCapture(frames=200, interval=0.001)
    source = LiveCapture(0, FAST, capture_factory=lambda target: cap)
    seen = []
    for frame in source:
        seen.append(int(frame.image[0, 0, 0]))
        time.sleep(0.02)  # a slow consumer
        if len(seen) == 5:
            break
    source.close()
    assert seen == sorted(seen) and seen[-1] - seen[0] > 4  # stale frames were skipped
    assert source.skipped > 0


@pytest.mark.parametrize(
    ("stable_after", "opens"),
    [
        (10.0, 3),  # the reopened stream gave 3 frames and dropped: its try is spent, one is left
        (0.05, 4),  # it gave frames for 0.1 s, past stable_after: both tries are back after its loss
    ],
    ids=["brief-reopen-spends-a-try", "lasting-reopen-restores-the-tries"],
)
def test_live_capture_reconnects_with_backoff_then_stops(stable_after, opens):
    opened = []

    def factory(target):
        opened.append(target)
        return FakeCapture(frames=3, interval=0.05) if len(opened) <= 2 else FakeCapture(opened=False)

    options = LiveOptions(
        open_timeout=1.0, read_timeout=1.0, reconnect_tries=2, backoff_start=0.01, stable_after=stable_after
    )
    source = LiveCapture("rtsp://example/stream", options, capture_factory=factory)
    frames = list(source)
    source.close()
    assert len(opened) == opens  # the first open, one good reconnect, then the failed tries left
    assert source.reconnects == 1
    assert 1 <= len(frames) <= 6
    assert "2 reconnection tries failed" in source.stop_reason


def test_camera_that_does_not_exist_fails_fast():
    start = time.monotonic()
    with pytest.raises(SourceError, match="camera 97"):
        LiveCapture(97, FAST)
    assert time.monotonic() - start < 5


def test_stream_that_stalls_on_open_times_out():
    block = threading.Event()

    def stall(target):
        block.wait(5)
        return FakeCapture()

    start = time.monotonic()
    with pytest.raises(SourceError, match="did not open within 0.3 s"):
        LiveCapture("rtsp://stall", LiveOptions(open_timeout=0.3), capture_factory=stall)
    block.set()
    assert time.monotonic() - start < 2


def test_stream_that_stalls_mid_read_stops_with_a_reason():
    class Stalling(FakeCapture):
        def read(self):
            if self.read_count >= 2:
                time.sleep(3)
            return super().read()

    opened = []

    def factory(target):
        opened.append(target)
        return Stalling(frames=50) if len(opened) == 1 else FakeCapture(opened=False)

    options = LiveOptions(read_timeout=0.3, reconnect_tries=2, backoff_start=0.01, backoff_max=0.02)
    source = LiveCapture("rtsp://x", options, capture_factory=factory)
    frames = list(source)
    source.close()
    assert len(frames) == 2 and "stalled" in source.stop_reason
    assert len(opened) == 3 and "2 reconnection tries failed" in source.stop_reason  # a stall is a loss


def test_idx_file_source(mnist_dir):
    frames = list(open_source(str(mnist_dir / "t10k-images-idx3-ubyte.gz")))
    assert len(frames) == 5000 and frames[0].image.shape == (28, 28)


def test_truncated_video_gives_the_frames_it_has(tmp_path, caplog):
    path = write_video(tmp_path / "v.avi", frames=40)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    source = open_source(str(path))
    frames = list(source)
    assert 0 < len(frames) < 40
    assert [f.index for f in frames] == list(range(len(frames)))


def test_open_source_reads_arrays_by_the_same_rule_as_the_model():
    """One rule for arrays in memory (frames.split_frames): open_source(array) as model(array)."""
    import numpy as np

    from edgerun.runtime.frames import SourceError
    from edgerun.runtime.sources import open_source

    assert len(list(open_source(np.zeros((28, 28, 3), np.uint8)))) == 1
    assert len(list(open_source(np.zeros((5, 28, 28, 1), np.uint8)))) == 5
    with pytest.raises(SourceError, match=r"add the channel axis: array\[\.\.\., None\]"):
        open_source(np.zeros((5, 28, 28), np.uint8))  # was 5 frames here and an error in model(x)
    with pytest.raises(SourceError, match="item 1 of the inputs is None"):
        open_source([np.zeros((28, 28), np.uint8), None])


def test_a_damaged_frame_is_an_error_frame_and_the_video_goes_on(damaged_video):
    """A frame that cannot be decoded mid-file is one error frame at its own index; the frames
    after it are read with their own indices and times (OpenCV's POS_FRAMES skips the failure)."""
    source = open_source(str(damaged_video(40, 12, 25, 26)))
    frames = list(source)
    assert [f.index for f in frames] == list(range(40))
    assert [f.index for f in frames if f.error] == [12, 25, 26]
    assert "frame 12 of" in frames[12].error and "could not be decoded" in frames[12].error
    assert all(f.image is not None for f in frames if not f.error)
    assert frames[30].timestamp == pytest.approx(30 / 30.0)  # 30 fps: frame 30 is at 1 s
    assert source.stop_reason is None and source.damaged == 3


def test_a_video_that_stops_decoding_ends_without_spinning(damaged_video):
    """From frame 10 on nothing decodes (a cut file reads the same): the run of failures is the
    end of the file, bounded, with no error frames for frames that may not exist."""
    source = open_source(str(damaged_video(60, *range(10, 60))))
    frames = list(source)
    assert [f.index for f in frames] == list(range(10)) and not any(f.error for f in frames)
    assert "decoded 10 of 60 frames; nothing decodes from frame 10 on" in source.stop_reason


def test_a_video_named_in_a_list_file_says_to_give_it_as_the_source(tmp_path, digit_video):
    from edgerun.runtime.sources import open_source

    digit_video(tmp_path / "clip.avi", 3)
    (tmp_path / "list.txt").write_text("clip.avi\n")
    (frame,) = open_source(str(tmp_path / "list.txt"))
    assert "clip.avi is a video, read here as one image; give the video itself as the source" in frame.error


@pytest.mark.parametrize("bad", [(39,), (37, 38, 39)], ids=["last", "last-three"])
def test_damaged_last_frames_are_error_frames_not_a_cut_file(damaged_video, bad):
    """The last frames' data is in the file (its AVI chunks are whole) but does not decode:
    one error frame each, like a damaged frame mid-file; not 'the file may be truncated'."""
    source = open_source(str(damaged_video(40, *bad)))
    frames = list(source)
    assert [f.index for f in frames] == list(range(40))
    assert [f.index for f in frames if f.error] == list(bad)
    assert "it is the video's last frame" in frames[39].error
    assert source.stop_reason is None and source.damaged == len(bad)


def test_a_cut_video_is_told_from_a_damaged_one(tmp_path, digit_video):
    from edgerun.runtime.containers import is_whole

    video = digit_video(tmp_path / "v.avi", 12)
    assert is_whole(video) is True
    cut = tmp_path / "cut.avi"
    cut.write_bytes(video.read_bytes()[:-100])
    assert is_whole(cut) is False
    writer = cv2.VideoWriter(str(tmp_path / "v.mp4"), cv2.VideoWriter_fourcc(*"mp4v"), 30, (64, 64))
    for i in range(5):
        writer.write(np.full((64, 64, 3), i * 40, np.uint8))
    writer.release()
    mp4 = (tmp_path / "v.mp4").read_bytes()
    assert is_whole(tmp_path / "v.mp4") is True
    (tmp_path / "cut.mp4").write_bytes(mp4[: len(mp4) // 2])
    assert is_whole(tmp_path / "cut.mp4") is False
    (tmp_path / "other.mkv").write_bytes(b"\x1a\x45\xdf\xa3" + bytes(60))
    assert is_whole(tmp_path / "other.mkv") is None
    assert is_whole(tmp_path / "missing.avi") is None
