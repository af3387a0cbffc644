"""Issue 11's hostile cases, run against one edgerun install: exit code, records, peak memory.

    python scripts/reliability_cases.py --python .venv/bin/python --out out/reliability/after.json
    python scripts/reliability_cases.py --table out/reliability/before.json out/reliability/after.json

Each case runs ``PYTHON -m edgerun ...`` in a fresh folder under --work (its own copy of the
model and inputs, so a case that destroys its input harms nothing else), as a child process
whose peak resident memory comes from ``wait4``. Permission cases run as an unprivileged user
(made with useradd when run as root); the full-disk case mounts a 64 KiB tmpfs (root only).
The fixtures are built with this interpreter (it needs onnx, numpy, OpenCV and Pillow).
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import http.server
import json
import os
import shutil
import socketserver
import stat
import struct
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
MODEL = REPO / "models" / "mnist_cnn.onnx"
USER = "edgerun-rel"


@dataclass
class Outcome:
    case: str
    exit: int | None
    records: int
    invalid_lines: int
    peak_mb: float
    seconds: float
    note: str
    unexpected: bool


# -- fixtures --------------------------------------------------------------------------------
def digits(directory: Path, n: int = 5) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        image = np.zeros((28, 28), np.uint8)
        cv2.putText(image, str(i % 10), (6, 22), cv2.FONT_HERSHEY_SIMPLEX, 0.8, 255, 2)
        path = directory / f"{i:05d}.png"
        cv2.imwrite(str(path), image)
        paths.append(path)
    return paths


def video(path: Path, frames: int, size=(64, 64)) -> Path:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 30.0, size)
    for i in range(frames):
        image = np.zeros((size[1], size[0], 3), np.uint8)
        cv2.putText(image, str(i % 10), (size[0] // 4, size[1] * 3 // 4), cv2.FONT_HERSHEY_SIMPLEX, 1, (255,) * 3, 3)
        writer.write(image)
    writer.release()
    return path


def rle_bmp(path: Path, width: int, height: int) -> Path:
    """A BMP with 8-bit RLE: a few hundred bytes that decode to width x height pixels."""
    palette = b"".join(bytes((i, i, i, 0)) for i in range(256))
    data = b"\x00\x01"  # end of bitmap at once: the decoder still allocates the whole image
    offset = 14 + 40 + len(palette)
    info = struct.pack("<IiiHHIIiiII", 40, width, height, 1, 8, 1, len(data), 2835, 2835, 256, 0)
    header = b"BM" + struct.pack("<IHHI", offset + len(data), 0, 0, offset)
    path.write_bytes(header + info + palette + data)
    return path


def idx_header(path: Path, count: int, rows: int, cols: int, payload: bytes = b"", gz: bool = False) -> Path:
    raw = struct.pack(">IIII", 0x803, count, rows, cols) + payload
    path.write_bytes(gzip.compress(raw, 9) if gz else raw)
    return path


def idx_bomb(path: Path, count: int) -> Path:
    """A gzip IDX whose zero images inflate ~1000:1, streamed so making it takes little memory."""
    chunk = bytes(28 * 28 * 1000)
    with gzip.open(path, "wb", 9) as fh:
        fh.write(struct.pack(">IIII", 0x803, count, 28, 28))
        for _ in range(count // 1000):
            fh.write(chunk)
    return path


def onnx_model(path: Path, kind: str, props: dict[str, str] | None = None) -> Path:
    """Tiny models made with onnx.helper: 'wide' (N,1000) outputs, 'ten' (N,10), 'nan' (NaN
    probabilities), 'batch' (an output of shape [N]), 'external' (an initializer stored in
    external data at ``props['location']``)."""
    import onnx
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 28, 28, 1])
    shape = helper.make_tensor("shape", TensorProto.INT64, [2], [-1, 784])
    nodes = [helper.make_node("Reshape", ["input", "shape"], ["flat"])]
    inits = [shape]
    width = {"wide": 1000, "ten": 10, "nan": 10, "batch": 10, "external": 10}[kind]
    weights = np.random.default_rng(0).normal(0, 0.05, (784, width)).astype(np.float32)
    w = helper.make_tensor("w", TensorProto.FLOAT, weights.shape, weights.ravel())
    inits.append(w)
    nodes.append(helper.make_node("MatMul", ["flat", "w"], ["logits"]))
    out_shape: list = ["N", width]
    if kind == "nan":
        zero = helper.make_tensor("zero", TensorProto.FLOAT, [], [0.0])
        inits.append(zero)
        nodes += [
            helper.make_node("Mul", ["logits", "zero"], ["z"]),
            helper.make_node("Div", ["z", "zero"], ["probs"]),
        ]
    elif kind == "batch":
        nodes.append(helper.make_node("ReduceMax", ["logits"], ["probs"], keepdims=0, axes=[1]))
        out_shape = ["N"]
    else:
        nodes.append(helper.make_node("Softmax", ["logits"], ["probs"], axis=-1))
    y = helper.make_tensor_value_info("probs", TensorProto.FLOAT, out_shape)
    graph = helper.make_graph(nodes, kind, [x], [y], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    if kind == "external":
        location = (props or {}).pop("location")
        w.data_location = TensorProto.EXTERNAL
        del w.external_data[:]
        entry = w.external_data.add()
        entry.key, entry.value = "location", location
        w.ClearField("float_data")
        w.ClearField("raw_data")
        model.graph.initializer[1].CopyFrom(w)
    for key, value in (props or {}).items():
        model.metadata_props.add(key=key, value=value)
    onnx.save(model, str(path))
    return path


def with_metadata(src: Path, dst: Path, changes: dict[str, str]) -> Path:
    import onnx

    model = onnx.load(str(src))
    props = {p.key: p.value for p in model.metadata_props}
    props.update(changes)
    del model.metadata_props[:]
    for key, value in props.items():
        model.metadata_props.add(key=key, value=value)
    onnx.save(model, str(dst))
    return dst


def edgerun_props(classes: list[str]) -> dict[str, str]:
    pre = {"recipe": "gray", "size": [28, 28], "color": "gray", "scale": 1 / 255, "resize": "area"}
    return {
        "edgerun.schema": "1",
        "edgerun.name": "tiny",
        "edgerun.task": "classify",
        "edgerun.classes": json.dumps(classes),
        "edgerun.input_name": "input",
        "edgerun.output_name": "probs",
        "edgerun.preprocessing": json.dumps(pre),
    }


# -- a stream that goes away and comes back -----------------------------------------------------
class MjpegServer:
    """An MJPEG (multipart/x-mixed-replace) server on 127.0.0.1 serving ``frames`` frames per
    connection; stop() closes the port (connections refused), start() opens it again.

    ``kind``: ``mjpeg`` closes each connection after its frames, ``stall`` keeps it open and sends
    nothing more, ``snapshot`` answers one JPEG (image/jpeg) and closes, as a camera's snapshot.jpg.
    ``status`` other than 200 answers that error instead (404: a wrong path)."""

    def __init__(self, port: int = 0, frames: int | None = 20, kind: str = "mjpeg", status: int = 200) -> None:
        self.port, self.frames, self.kind, self.status, self.server = port, frames, kind, status, None
        self.stopping = threading.Event()
        self.requests = 0

    def start(self) -> MjpegServer:
        frames, stopping, kind, status, owner = self.frames, self.stopping, self.kind, self.status, self

        def jpeg(i: int) -> bytes:
            image = np.zeros((28, 28, 3), np.uint8)
            cv2.putText(image, str(i % 10), (6, 22), cv2.FONT_HERSHEY_SIMPLEX, 0.8, (255,) * 3, 2)
            return cv2.imencode(".jpg", image)[1].tobytes()

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                return None

            def do_GET(self):  # noqa: N802 - http.server's name
                owner.requests += 1
                if status != 200:
                    self.send_error(status)
                    return
                if kind == "snapshot":
                    data = jpeg(3)
                    self.send_response(200)
                    self.send_header("Content-Type", "image/jpeg")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                    return
                self.send_response(200)
                self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
                self.end_headers()
                try:
                    i = 0
                    while not stopping.is_set() and (frames is None or i < frames):
                        i += 1
                        data = jpeg(i)
                        self.wfile.write(
                            b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\n\r\n" % len(data)
                            + data
                            + b"\r\n"
                        )
                        self.wfile.flush()
                        time.sleep(0.05)
                    if kind == "stall":
                        stopping.wait()
                except (BrokenPipeError, ConnectionResetError):
                    pass

        class Server(socketserver.ThreadingTCPServer):
            allow_reuse_address = True
            daemon_threads = True

        self.server = Server(("127.0.0.1", self.port), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        self.stopping.set()  # open connections end too
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/stream.mjpg"


# -- running one case ------------------------------------------------------------------------
def ensure_user() -> tuple[int, int] | None:
    if os.geteuid() != 0:
        return None
    try:
        import pwd

        entry = pwd.getpwnam(USER)
    except KeyError:
        subprocess.run(["useradd", "-M", "-r", "-s", "/usr/sbin/nologin", USER], check=True)
        import pwd

        entry = pwd.getpwnam(USER)
    return entry.pw_uid, entry.pw_gid


#: Run ``edgerun`` as another user: everything it imports is imported first (as root), then the
#: process drops its privileges, so files are opened with the user's rights.
AS_USER = """
import importlib, os, pkgutil, sys
# The interpreter may sit where the user cannot read (/root/.pyenv under a 0700 /root): import, while
# still root, every module the run may need, so the run itself touches only the files under test.
import edgerun.runtime
runtime = ["edgerun.runtime." + m.name for m in pkgutil.iter_modules(edgerun.runtime.__path__)]
for name in ("numpy", "cv2", "onnxruntime", "tqdm", "PIL.Image", "edgerun.cli", "edgerun.models", "json",
             "logging.handlers", "hashlib", "glob", "queue", "random", "tempfile", *runtime):
    try:
        importlib.import_module(name)
    except ImportError:
        pass
try:
    from PIL import Image
    Image.init()
except ImportError:
    pass
uid, gid = int(sys.argv[1]), int(sys.argv[2])
os.setgroups([])
os.setgid(gid)
os.setuid(uid)
from edgerun.cli import main
sys.exit(main(sys.argv[3:]))
"""


def count_records(text: str) -> tuple[int, int]:
    good = bad = 0
    for line in text.splitlines():
        if not line.strip():
            continue
        try:
            json.loads(line)
            good += 1
        except ValueError:
            bad += 1
    return good, bad


def execute(
    python: str,
    argv: list[str],
    cwd: Path,
    timeout: float,
    *,
    user=None,
    env=None,
    stdout=None,
    head_lines: int | None = None,
    during=None,
) -> tuple[int | None, str, str, float, float]:
    """(exit code or None if killed at the timeout, stdout, stderr, peak MB, seconds)."""
    full_env = {**os.environ, "PYTHONUNBUFFERED": "1", "HOME": str(cwd), **(env or {})}
    out_target = stdout if stdout is not None else subprocess.PIPE
    command = [python, "-m", "edgerun", *argv]
    if user is not None:  # root: import what the run needs, then drop to the user (the interpreter
        command = [python, "-c", AS_USER, str(user[0]), str(user[1]), *argv]  # may sit under /root)
    # Peak memory from GNU time (wait4 on its own small child): a child of this script would
    # inherit this script's resident size into its maximum at exec.
    rss_file = cwd / ".maxrss"
    command = ["/usr/bin/time", "-f", "%M", "-o", str(rss_file), *command]
    start = time.monotonic()
    proc = subprocess.Popen(
        command, cwd=cwd, env=full_env, stdout=out_target, stderr=subprocess.PIPE, start_new_session=True
    )
    collected = {"out": b"", "err": b""}

    def drain(stream, key):
        collected[key] = stream.read()

    threads = [threading.Thread(target=drain, args=(proc.stderr, "err"), daemon=True)]
    if out_target is subprocess.PIPE and head_lines is None:
        threads.append(threading.Thread(target=drain, args=(proc.stdout, "out"), daemon=True))
    for t in threads:
        t.start()
    if head_lines is not None:  # `| head -N`: read N lines, then close the pipe
        lines = [proc.stdout.readline() for _ in range(head_lines)]
        collected["out"] = b"".join(lines)
        proc.stdout.close()
    if during is not None:
        during(proc)
    killed = False
    deadline = start + timeout
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            break
        if time.monotonic() > deadline:
            os.killpg(proc.pid, 9)
            killed = True
            pid, status, usage = os.wait4(proc.pid, 0)
            break
        time.sleep(0.02)
    proc.returncode = os.waitstatus_to_exitcode(status)
    for t in threads:
        t.join(5)
    seconds = time.monotonic() - start
    code = None if killed else proc.returncode
    try:
        peak_kb = int(rss_file.read_text().split()[-1])
    except (OSError, ValueError, IndexError):  # killed: time wrote nothing; the group's peak is unknown
        peak_kb = 0
    err = collected["err"].decode("utf-8", "replace")
    return code, collected["out"].decode("utf-8", "replace"), err, peak_kb / 1024, seconds


def first_message(stderr: str) -> str:
    """What the user is told: an error line first, else why the source ended early, else the
    first warning, else the run's summary line."""
    errors, ended, warnings, summary = [], [], [], ""
    for line in stderr.splitlines():
        text = line.strip()
        if "error:" in text or "unexpected error" in text:
            errors.append(text)
        elif " WARNING " in text or " ERROR " in text:
            message = text.split(": ", 1)[-1]
            (ended if "ended early" in message or "gave no inputs" in message else warnings).append(message)
        elif " INFO " in text and " inputs, " in text:
            summary = ", ".join(text.split(": ", 1)[-1].split(", ", 2)[:2])
    return _short((errors or ended or warnings or [summary])[0])


def _short(text: str) -> str:
    text = text.replace("|", "/")
    return text if len(text) <= 220 else f"{text[:90]} … {text[-120:]}"


# -- the cases -------------------------------------------------------------------------------
def cases(shared: Path):
    """(name, setup(dir) -> dict(argv, json, ...)) for every case."""
    user = ensure_user()

    def c(name, setup, **kw):
        return name, setup, kw

    def perm_dir(d):
        digits(d / "in")
        (d / "in" / "00002.png").chmod(0)
        return {"argv": ["run", "model.onnx", "--source", "in", "--json", "r.jsonl"], "user": user, "json": "r.jsonl"}

    def long_name_list(d):
        paths = digits(d / "in", 4)
        lines = [str(paths[0]), str(paths[1]), str(d / ("x" * 300 + ".png")), str(paths[2]), str(paths[3])]
        (d / "list.txt").write_text("\n".join(lines) + "\n")
        return {"argv": ["run", "model.onnx", "--source", "list.txt", "--json", "r.jsonl"], "json": "r.jsonl"}

    def loop_dir(d):
        digits(d / "in", 3)
        (d / "in" / "self.png").symlink_to("self.png")
        (d / "in" / "a.png").symlink_to("b.png")
        (d / "in" / "b.png").symlink_to("a.png")
        return {"argv": ["run", "model.onnx", "--source", "in", "--json", "r.jsonl"], "json": "r.jsonl"}

    def glob_loop(d):
        digits(d / "in", 2)
        (d / "in" / "again").symlink_to(".")
        return {"argv": ["run", "model.onnx", "--source", "in/**/*.png", "--json", "r.jsonl"], "json": "r.jsonl"}

    def video_truncated(d):
        path = video(d / "v.avi", 100)
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2])
        return {"argv": ["run", "model.onnx", "--source", "v.avi", "--json", "r.jsonl"], "json": "r.jsonl"}

    def video_empty(d):
        video(d / "v.avi", 0)
        return {"argv": ["run", "model.onnx", "--source", "v.avi", "--json", "r.jsonl"], "json": "r.jsonl"}

    def idx_empty(d):
        idx_header(d / "e-idx3-ubyte", 0, 28, 28)
        return {"argv": ["run", "model.onnx", "--source", "e-idx3-ubyte", "--json", "r.jsonl"], "json": "r.jsonl"}

    def head_one(d):
        digits(d / "in", 200)
        return {"argv": ["run", "model.onnx", "--source", "in"], "head": 1}

    def json_devfull(d):
        digits(d / "in")
        return {"argv": ["run", "model.onnx", "--source", "in", "--json", "/dev/full"]}

    def stdout_devfull(d):
        digits(d / "in")
        return {"argv": ["run", "model.onnx", "--source", "in", "--json", "-"], "stdout": "/dev/full"}

    def disk_full(d):
        digits(d / "in", 400)
        (d / "small").mkdir()
        if os.geteuid() != 0:
            return {"skip": "needs root to mount a tmpfs"}
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16k", "tmpfs", str(d / "small")], check=True)
        return {
            "argv": ["run", "model.onnx", "--source", "in", "--json", "small/r.jsonl"],
            "json": "small/r.jsonl",
            "cleanup": lambda: subprocess.run(["umount", str(d / "small")], check=False),
        }

    def non_utf8_name(d):
        digits(d / "in", 2)
        os.rename(d / "in" / "00001.png", os.path.join(os.fsencode(d / "in"), b"\xff\xfe.png"))
        return {
            "argv": ["run", "model.onnx", "--source", "in"],
            "env": {"PYTHONIOENCODING": "utf-8:strict"},
            "stdout_records": "lines",
        }

    def meta(changes):
        def setup(d):
            digits(d / "in", 2)
            with_metadata(d / "model.onnx", d / "model.onnx", changes)
            return {"argv": ["run", "model.onnx", "--source", "in", "--json", "r.jsonl"], "json": "r.jsonl"}

        return setup

    def json_at_model(d):
        digits(d / "in", 2)
        return {"argv": ["run", "model.onnx", "--source", "in", "--json", "model.onnx"], "check_sha": "model.onnx"}

    def json_at_input(d):
        digits(d / "in", 2)
        return {"argv": ["run", "model.onnx", "--source", "in", "--json", "in/00000.png"], "check_sha": "in/00000.png"}

    def save_at_video(d):
        video(d / "v.avi", 100)
        return {
            "argv": ["run", "model.onnx", "--source", "v.avi", "--save", "v.avi", "--json", "r.jsonl"],
            "json": "r.jsonl",
            "check_sha": "v.avi",
        }

    # one short bench row: what matters in these cases is where the report is written
    bench_once = ["bench", "model.onnx", "--batch", "1", "--iters", "3", "--rounds", "1", "--warmup", "0"]

    def bench_chardev(d):
        os.mknod(d / "dev", 0o666 | stat.S_IFCHR, os.makedev(1, 3))
        return {
            "argv": [*bench_once, "--json", "dev"],
            "check_kind": "dev",
        }

    def bench_symlink(d):
        (d / "real.json").write_text("{}")
        (d / "link.json").symlink_to("real.json")
        return {
            "argv": [*bench_once, "--json", "link.json"],
            "check_kind": "link.json",
        }

    def save_to(where):
        def setup(d):
            digits(d / "in", 3)
            return {
                "argv": ["run", "model.onnx", "--source", "in", "--save", where, "--json", "r.jsonl"],
                "json": "r.jsonl",
            }

        return setup

    def save_full_disk(d):
        paths = digits(d / "in", 40)
        for p in paths:
            cv2.imwrite(str(p), cv2.resize(cv2.imread(str(p)), (280, 280)))
        (d / "small").mkdir()
        if os.geteuid() != 0:
            return {"skip": "needs root to mount a tmpfs"}
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(d / "small")], check=True)
        return {
            "argv": ["run", "model.onnx", "--source", "in", "--save", "small/out.avi", "--json", "r.jsonl"],
            "json": "r.jsonl",
            "cleanup": lambda: subprocess.run(["umount", str(d / "small")], check=False),
        }

    def shared_file(name, make):
        path = shared / name
        if not path.exists():  # made in a child process: this script's memory stays small
            pid = os.fork()
            if pid == 0:
                try:
                    make(path)
                finally:
                    os._exit(0)
            os.waitpid(pid, 0)
        return path

    def bomb(names, batch=1):
        def setup(d):
            (d / "in").mkdir()
            for name, make in names:
                os.symlink(shared_file(name, make), d / "in" / name)
            return {
                "argv": ["run", "model.onnx", "--source", "in", "--json", "r.jsonl", "--batch", str(batch)],
                "json": "r.jsonl",
            }

        return setup

    def make_bmp(p):
        rle_bmp(p, 30000, 30000)

    def make_webp(p):
        from PIL import Image

        Image.new("L", (16000, 16000)).convert("RGB").save(p, "WEBP", lossless=True)

    def make_tiff(p):
        from PIL import Image

        Image.new("L", (20000, 20000)).save(p, "TIFF", compression="tiff_deflate")

    def idx_gzip_bomb(d):
        shared_file("bomb-idx3-ubyte.gz", lambda p: idx_bomb(p, 1_900_000))
        os.symlink(shared / "bomb-idx3-ubyte.gz", d / "bomb-idx3-ubyte.gz")
        return {
            "argv": ["run", "model.onnx", "--source", "bomb-idx3-ubyte.gz", "--max-frames", "10", "--json", "r.jsonl"],
            "json": "r.jsonl",
        }

    def idx_zero(d):
        idx_header(d / "z-idx3-ubyte", 0xFFFFFFFF, 0, 0)
        return {
            "argv": ["run", "model.onnx", "--source", "z-idx3-ubyte", "--json", "r.jsonl"],
            "json": "r.jsonl",
            "timeout": 10,
        }

    def hd(batch):
        def setup(d):
            path = shared_file("hd.avi", lambda p: video(p, 500, (1920, 1080)))
            os.symlink(path, d / "hd.avi")
            return {
                "argv": ["run", "model.onnx", "--source", "hd.avi", "--batch", str(batch), "--json", "r.jsonl"],
                "json": "r.jsonl",
                "timeout": 300,
            }

        return setup

    def external(location, peer):
        def setup(d):
            (d / "m").mkdir()
            if location == "fifo.bin":
                os.mkfifo(d / "m" / "fifo.bin")
            (d / "secret.bin").write_bytes(b"\x00" * 784 * 10 * 4)
            props = {"location": location}
            onnx_model(d / "m" / "ext.onnx", "external", props)
            if peer:
                return {
                    "argv": [
                        "bench",
                        "m/ext.onnx",
                        "--vs",
                        "opencv",
                        "--batch",
                        "1",
                        "--iters",
                        "3",
                        "--rounds",
                        "1",
                        "--warmup",
                        "0",
                    ],
                    "timeout": 60,
                }
            digits(d / "in", 1)
            return {
                "argv": ["run", "m/ext.onnx", "--source", "in", "--json", "r.jsonl"],
                "json": "r.jsonl",
                "timeout": 60,
            }

        return setup

    def tiny(kind, classes=None, batch=1, labels=None):
        def setup(d):
            digits(d / "in", 4)
            props = edgerun_props(classes) if classes is not None else {}
            onnx_model(d / "tiny.onnx", kind, props)
            argv = ["run", "tiny.onnx", "--source", "in", "--json", "r.jsonl", "--batch", str(batch)]
            if classes is None:
                argv += ["--size", "28", "28", "--gray"]
            if labels:
                (d / "labels.txt").write_text("\n".join(labels) + "\n")
                argv += ["--labels", "labels.txt"]
            return {"argv": argv, "json": "r.jsonl"}

        return setup

    def fifo(kind):
        def setup(d):
            os.mkfifo(d / {"list": "list.txt", "labels": "labels.txt", "video": "v.avi"}[kind])
            digits(d / "in", 1)
            argv = {
                "list": ["--source", "list.txt"],
                "labels": ["--source", "in", "--labels", "labels.txt"],
                "video": ["--source", "v.avi"],
            }[kind]
            return {"argv": ["run", "model.onnx", *argv, "--json", "r.jsonl"], "json": "r.jsonl", "timeout": 15}

        return setup

    def stream_back(d):
        return {"stream": True, "json": "r.jsonl", "timeout": 90}

    pre_bad = json.dumps({"recipe": "mnist", "size": [28, 28], "color": "gray", "scale": 1 / 255, "mean": ["a"]})
    return [
        c("unreadable file in a directory (non-root)", perm_dir),
        c("300-character name in a list file", long_name_list),
        c("symlink loops inside a directory", loop_dir),
        c("** glob through a looping directory link", glob_loop),
        c("truncated video (100 frames, half the bytes)", video_truncated),
        c("zero-frame video", video_empty),
        c("IDX file with 0 images", idx_empty),
        c("run ... | head -1", head_one),
        c("--json /dev/full", json_devfull),
        c("--json - > /dev/full", stdout_devfull),
        c("--json on a disk that fills up (16 KiB tmpfs)", disk_full),
        c("non-UTF-8 file name, strict stdout encoding", non_utf8_name),
        c("metadata: task localize on a classifier", meta({"edgerun.task": "localize"})),
        c("metadata: classes not a list of strings", meta({"edgerun.classes": '"0123456789"'})),
        c("metadata: classes are numbers", meta({"edgerun.classes": json.dumps(list(range(10)))})),
        c("metadata: non-numeric mean", meta({"edgerun.preprocessing": pre_bad})),
        c(
            "metadata: size [true, 28]",
            meta({"edgerun.preprocessing": pre_bad.replace('["a"]', "[0.1]").replace("[28, 28]", "[true, 28]")}),
        ),
        c("--json pointed at the model", json_at_model),
        c("--json pointed at an input image", json_at_input),
        c("--save pointed at the input video", save_at_video),
        c("bench --json at a character device", bench_chardev),
        c("bench --json at a symlink", bench_symlink),
        c("--save /proc/self (an existing folder)", save_to("/proc/self")),
        c("--save /sys/kernel (an existing folder)", save_to("/sys/kernel")),
        c("--save video on a disk that fills up (64 KiB tmpfs)", save_full_disk),
        c("RLE BMP 30000x30000 (1 KB)", bomb([("bomb.bmp", make_bmp)])),
        c("4 RLE BMP bombs, --batch 4", bomb([(f"bomb{i}.bmp", make_bmp) for i in range(4)], batch=4)),
        c("WebP 16000x16000", bomb([("big.webp", make_webp)])),
        c("TIFF 20000x20000", bomb([("big.tif", make_tiff)])),
        c("IDX gzip bomb (1.5 GB inflated), --max-frames 10", idx_gzip_bomb),
        c("IDX header: 4.29 billion 0x0 images", idx_zero),
        c("--batch 100000 on 500 HD frames", hd(100000)),
        c("--batch 1024 on 500 HD frames", hd(1024)),
        c("bench --vs opencv, external data outside the folder", external("../secret.bin", True)),
        c("bench --vs opencv, external data is a FIFO", external("fifo.bin", True)),
        c("run, external data outside the folder", external("../secret.bin", False)),
        c("1000 outputs, 3 class names", tiny("wide", ["a", "b", "c"])),
        c("10 outputs, 3 class names", tiny("ten", ["a", "b", "c"])),
        c("foreign model, 10 outputs, --labels with 3 names", tiny("ten", None, labels=["a", "b", "c"])),
        c("NaN probabilities", tiny("nan", [str(i) for i in range(10)])),
        c("[batch]-shaped output, --batch 4", tiny("batch", None, batch=4)),
        c("stream down 6 s mid-run, back 5 s, then gone", stream_back),
        c("list file is a FIFO", fifo("list")),
        c("--labels is a FIFO", fifo("labels")),
        c("video file is a FIFO", fifo("video")),
    ]


def run_stream_case(python: str, d: Path) -> tuple:
    server = MjpegServer(frames=None).start()
    port = server.port

    def during(proc):
        time.sleep(3.0)  # frames at 20 fps, then the server goes away for 6 s (the 4th try, 7.5 s
        server.stop()  # after the loss, reaches it; the 5 s read timeout used to end the run first)
        time.sleep(6.0)
        back = MjpegServer(port=port, frames=None).start()
        time.sleep(5.0)
        back.stop()  # and away for good: the tries run out

    argv = ["run", "model.onnx", "--source", server.url, "--json", "r.jsonl"]
    return execute(python, argv, d, 90, during=during)


def run_case(python: str, work: Path, shared: Path, name: str, setup) -> Outcome:
    d = work / hashlib.sha1(name.encode()).hexdigest()[:10]
    if d.exists():
        subprocess.run(["umount", str(d / "small")], capture_output=True, check=False)
        shutil.rmtree(d)
    d.mkdir(parents=True)
    os.chmod(d, 0o777)
    shutil.copy(MODEL, d / "model.onnx")
    spec = setup(d)
    if spec.get("skip"):
        return Outcome(name, None, 0, 0, 0.0, 0.0, f"skipped: {spec['skip']}", False)
    for path in d.rglob("*"):
        if path.is_symlink() or not path.exists():
            continue
        mode = path.stat().st_mode
        if stat.S_ISREG(mode) and mode & 0o400:  # readable by others too (a case's chmod 0 stays)
            path.chmod(mode | 0o044)
    before_sha = {}
    if spec.get("check_sha"):
        before_sha = hashlib.sha256((d / spec["check_sha"]).read_bytes()).hexdigest()
    try:
        if spec.get("stream"):
            code, out, err, peak, seconds = run_stream_case(python, d)
        else:
            stdout = open(spec["stdout"], "wb") if spec.get("stdout") else None  # noqa: SIM115
            try:
                code, out, err, peak, seconds = execute(
                    python,
                    spec["argv"],
                    d,
                    spec.get("timeout", 120),
                    user=spec.get("user"),
                    env=spec.get("env"),
                    stdout=stdout,
                    head_lines=spec.get("head"),
                )
            finally:
                if stdout is not None:
                    stdout.close()
        records = invalid = 0
        first_error = ""
        if spec.get("json") and (d / spec["json"]).is_file():
            text = (d / spec["json"]).read_text("utf-8", "replace")
            records, invalid = count_records(text)
            first_error = next((json.loads(x).get("error", "") for x in text.splitlines() if '"error"' in x), "")
        elif spec.get("stdout_records") or spec.get("head"):
            records = len([line for line in out.splitlines() if line.strip()])
        note = first_message(err)
        if first_error and " errors" in note:  # the summary alone: show what the error records say
            note = _short(f"{note}; first: {first_error.replace(str(d) + '/', '')}")
        if spec.get("check_sha"):
            target = d / spec["check_sha"]
            after = hashlib.sha256(target.read_bytes()).hexdigest() if target.exists() else None
            note = ("input intact; " if after == before_sha else "INPUT DESTROYED; ") + note
        if spec.get("check_kind"):
            target = d / spec["check_kind"]
            kind = "symlink" if target.is_symlink() else "char device" if target.is_char_device() else "regular file"
            note = f"{spec['check_kind']} is now a {kind}; " + note
        if code is None:
            note = f"killed after {seconds:.0f} s; " + note
        unexpected = "unexpected error" in err or "Traceback" in err
        return Outcome(name, code, records, invalid, round(peak, 0), round(seconds, 1), note, unexpected)
    finally:
        if spec.get("cleanup"):
            spec["cleanup"]()


def table(before: list[dict], after: list[dict]) -> str:
    by_name = {o["case"]: o for o in before}  # later entries win
    lines = [
        "| case | before: exit | records | peak MB | after: exit | records | peak MB | after: what the user is told |",
        "|---|---:|---:|---:|---:|---:|---:|---|",
    ]

    def cell(o):
        if o is None:
            return "-", "-", "-"
        code = "killed" if o["exit"] is None else str(o["exit"])
        if o["unexpected"]:
            code += " (unexpected error)"
        records = str(o["records"]) + (f" (+{o['invalid_lines']} invalid)" if o["invalid_lines"] else "")
        return code, records, f"{o['peak_mb']:.0f}"

    for o in after:
        b = by_name.get(o["case"])
        name = o["case"].replace("|", "\\|")
        lines.append(f"| {name} | {' | '.join(cell(b))} | {' | '.join(cell(o))} | {o['note']} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--python", default=sys.executable, help="the interpreter with the edgerun to test")
    p.add_argument("--out", type=Path, help="write the outcomes as JSON")
    p.add_argument("--work", type=Path, default=Path("/tmp/edgerun-reliability"))
    p.add_argument("--only", help="run the cases whose name contains this")
    p.add_argument(
        "--table",
        nargs=2,
        metavar=("BEFORE", "AFTER"),
        help="print the Markdown table (each: JSON files, comma-separated)",
    )
    args = p.parse_args(argv)
    if args.table:  # each side may be several files (a later run of some cases): later ones win
        before, after = (
            [o for part in str(path).split(",") for o in json.loads(Path(part).read_text())] for path in args.table
        )
        after = list({o["case"]: o for o in after}.values())
        print(table(before, after))
        return 0
    shared = args.work / "shared"
    shared.mkdir(parents=True, exist_ok=True)
    os.chmod(args.work, 0o755)
    outcomes = []
    for name, setup, _ in cases(shared):
        if args.only and args.only not in name:
            continue
        outcome = run_case(args.python, args.work / "cases", shared, name, setup)
        print(json.dumps(asdict(outcome)), flush=True)
        outcomes.append(asdict(outcome))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(outcomes, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
