from __future__ import annotations

import importlib.util
import json

import numpy as np
import pytest

from edgerun.bench import cli
from edgerun.bench.flops import flops_per_image
from edgerun.bench.stats import LatencyStats
from edgerun.runtime.timing import Timings

#: Peers that come with the train extra: (backend, module, the "skipped" message without it).
PEER_PACKAGES = (
    ("tflite", "ai_edge_litert", "ai-edge-litert is not installed (pip install ai-edge-litert)"),
    ("keras", "tensorflow", "tensorflow is not installed (pip install 'edgerun[train]')"),
    ("openvino", "openvino", "OpenVINO is not installed (pip install 'edgerun[openvino]')"),
)


def test_flops_are_counted_from_the_graph(tmp_path, tiny_model):
    path = tiny_model(tmp_path / "m.onnx")
    assert flops_per_image(path) == 2 * (4 * 26 * 26) * 9 + 2 * 2704 * 10


def test_flops_of_the_real_model(mnist_cnn):
    # Conv 32 (389,376) + Conv 64 (21,233,664) + Dense 128 (2,359,296) + Dense 10 (2,560)
    assert flops_per_image(mnist_cnn) == 23_984_896


def test_stats_keep_first_run_and_warmup_apart():
    timings = Timings(first_ns=50_000_000, warmup_ns=[9_000_000], samples_ns=np.arange(1, 101) * 1_000_000)
    stats = LatencyStats.from_timings(timings, batch=4)
    assert stats.first_ms == 50.0 and stats.warmup_ms == (9.0,)
    assert stats.max_ms == 100.0 and stats.p50_ms == pytest.approx(50.5)
    assert stats.p90_ms == pytest.approx(90.1) and stats.p99_ms == pytest.approx(99.01)
    assert stats.ms_per_img == pytest.approx(50.5 / 4) and stats.imgs_per_s == pytest.approx(4 / 0.0505)


def test_sweep_with_peers_writes_every_output(mnist_cnn, tmp_path, capsys):
    out = tmp_path / "r.json"
    code = cli.main(
        [
            str(mnist_cnn),
            "--batch",
            "1,4",
            "--vs",
            "ort-raw,tflite,opencv,openvino,keras",
            "--iters",
            "5",
            "--warmup",
            "1",
            "--json",
            str(out),
            "--markdown",
            str(tmp_path / "r.md"),
            "--plot",
            str(tmp_path / "r.png"),
        ]
    )
    assert code == 0
    report = json.loads(out.read_text())
    peak = report["machine"]["peak"]
    assert report["schema"] == 2 and peak["fp32_gflops"] > 0 and peak["int8_gops"] > 0
    assert "onnxruntime" in peak["source"] and "MatMul" in peak["source"]
    assert {"cpu", "onnxruntime", "threads", "provider", "date", "providers_in_use"} <= set(report["environment"])
    assert report["models"][0]["sha256"] and report["models"][0]["opset"] == 17
    assert report["models"][0]["precision"] == "fp32"
    # tflite and keras come with the train extra; without it each is one "skipped" row saying so
    missing = {name: message for name, module, message in PEER_PACKAGES if importlib.util.find_spec(module) is None}
    rows = [r for r in report["results"] if r["backend"] not in missing]
    assert {(r["backend"], r["batch"]) for r in rows} == {
        (b, n)
        for b in ("edgerun", "ort-raw", "tflite", "opencv", "openvino", "keras")
        if b not in missing
        for n in (1, 4)
    }
    for name, message in missing.items():
        (row,) = [r for r in report["results"] if r["backend"] == name]
        assert row["batch"] == 0 and row["error"] == f"skipped: {message}"
    # a peer's row: edgerun's median over its own, the interval and the verdict, from the rounds both
    # ran in (3 or more; a round cut short on a busy machine may leave a backend out)
    ratios = [r["edgerun_ratio"] for r in rows if r["backend"] != "edgerun" and r["edgerun_ratio"]]
    assert ratios and all(r["edgerun_ratio"] is None for r in rows if r["backend"] == "edgerun")
    for ratio in ratios:
        assert 0 < ratio["low"] <= ratio["high"] and ratio["estimate"] > 0 and 3 <= ratio["rounds"] <= 20
        assert ratio["verdict"] in ("faster", "level", "slower") and ratio["confidence"] == 0.95
    for row in rows:
        assert row["error"] is None and row["precision"] == "fp32"
        assert row["iters"] >= 5  # 20 rounds of ceil(5 / 20) calls, unless a very busy machine cut rounds short
        assert row["p50_ms"] <= row["p90_ms"] <= row["p99_ms"] <= row["max_ms"]
        assert row["gflops"] > 0 and row["first_ms"] > 0
        assert 0 < row["pct_peak"] <= 100, row  # the peak is onnxruntime's own GEMM, measured in this run
        assert row["round_us"] == [] and row["ref_batch"] is None  # a plain sweep: no reference, no gate data
    table = (tmp_path / "r.md").read_text()
    assert "| opencv | fp32 | 4 |" in table and "edgerun/peer" in table and "% peak is of" in table
    assert "a paired bootstrap over rounds" in table
    assert "tflite" in missing or "| tflite | fp32 | 4 |" in table
    import cv2

    assert cv2.imread(str(tmp_path / "r.png")).shape == (600, 1200, 3)


@pytest.mark.parametrize("name", ["mnist_cnn.onnx", "mnist_cnn.int8.onnx", "tiny-nchw"])
def test_openvino_peer_computes_what_onnxruntime_computes(mnist_cnn, mnist_test, tmp_path, tiny_model, name):
    """The OpenVINO peer runs the same model on the same batch (NHWC fed as is, NCHW transposed as
    for ort-raw) and answers as onnxruntime does: it is timing the same work."""
    pytest.importorskip("openvino", reason="the openvino extra is not installed")
    import onnxruntime as ort

    from edgerun.bench.backends import OpenvinoBackend

    path = tiny_model(tmp_path / "tiny.onnx", batch=None) if name == "tiny-nchw" else mnist_cnn.with_name(name)
    precision = "int8" if "int8" in name else "fp32"
    x = mnist_test[0][:256, :, :, None].astype(np.float32) / 255  # real digits, as the model was trained
    got = OpenvinoBackend(path, threads=2, precision=precision).prepare(x).run()
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    feed = x.transpose(0, 3, 1, 2) if name == "tiny-nchw" else x
    want = session.run(None, {session.get_inputs()[0].name: np.ascontiguousarray(feed)})[0]
    assert got.shape == want.shape
    if precision == "fp32":
        np.testing.assert_allclose(got, want, atol=1e-5)
    else:  # two int8 engines round requantised values their own way; the classes must not move
        assert (got.argmax(1) == want.argmax(1)).mean() >= 0.99 and np.abs(got - want).mean() < 0.005


def test_openvino_peer_refuses_other_precisions(mnist_cnn):
    from edgerun.bench.backends import OpenvinoBackend, PeerUnavailable

    with pytest.raises(PeerUnavailable, match="fp32 and int8 models only"):
        OpenvinoBackend(mnist_cnn, threads=2, precision="fp16")


def test_a_failing_batch_size_is_an_error_row(tmp_path, tiny_model):
    path = tiny_model(tmp_path / "fixed.onnx", batch=1)
    out = tmp_path / "r.json"
    assert cli.main([str(path), "--batch", "1,2", "--iters", "3", "--json", str(out)]) == 0
    rows = {r["batch"]: r for r in json.loads(out.read_text())["results"]}
    assert rows[1]["error"] is None and rows[1]["p50_ms"] > 0
    assert rows[2]["error"] and rows[2]["p50_ms"] is None


def test_json_to_standard_output_keeps_the_table_off_it(tmp_path, tiny_model, capsys, monkeypatch):
    """--json - wrote a file named '-' in the working folder, though bench's own message offered
    '-' for standard output. Now stdout carries the JSON alone; the table goes to stderr."""
    path = tiny_model(tmp_path / "m.onnx")
    monkeypatch.chdir(tmp_path)
    assert cli.main([str(path), "--batch", "1", "--iters", "3", "--json", "-"]) == 0
    captured = capsys.readouterr()
    report = json.loads(captured.out)
    assert report["results"][0]["p50_ms"] > 0 and "| edgerun |" in captured.err
    assert not (tmp_path / "-").exists()


def test_a_model_name_with_escape_codes_is_shown_escaped(tmp_path, tiny_model, capsys):
    path = tiny_model(tmp_path / "m\x1b[31m\nx.onnx")
    assert cli.main([str(path), "--batch", "1", "--iters", "3"]) == 0
    out = capsys.readouterr().out
    assert "### m\\x1b[31m\\nx.onnx\n" in out and "\x1b" not in out


def test_missing_peer_is_skipped_with_a_message(tmp_path, tiny_model):
    path = tiny_model(tmp_path / "lonely.onnx")
    out = tmp_path / "r.json"
    assert cli.main([str(path), "--batch", "1", "--iters", "3", "--vs", "tflite", "--json", str(out)]) == 0
    skipped = [r for r in json.loads(out.read_text())["results"] if r["backend"] == "tflite"]
    assert skipped[0]["error"].startswith("skipped: no fp32 TFLite twin")


def test_int8_model_meets_int8_peers_only(mnist_cnn, tmp_path):
    """The int8 ONNX model is compared with the full-integer TFLite twin, never the fp32 one, nor Keras."""
    int8 = mnist_cnn.with_name("mnist_cnn.int8.onnx")  # committed beside mnist_cnn.int8.tflite
    out = tmp_path / "r.json"
    argv = [str(int8), "--batch", "1", "--iters", "5", "--vs", "tflite,keras,openvino", "--json", str(out)]
    assert cli.main(argv) == 0
    rows = {r["backend"]: r for r in json.loads(out.read_text())["results"]}
    assert rows["edgerun"]["precision"] == "int8" and rows["edgerun"]["error"] is None
    assert rows["keras"]["error"].startswith("skipped: Keras runs the fp32 model only")
    if importlib.util.find_spec("openvino") is not None:  # reads the int8 ONNX itself: same precision
        assert rows["openvino"]["precision"] == "int8" and rows["openvino"]["error"] is None
    assert 0 < rows["edgerun"]["pct_peak"] <= 100  # of the int8 GEMM peak
    if importlib.util.find_spec("ai_edge_litert") is None:  # the runtime-only install: said, not failed
        assert rows["tflite"]["error"] == "skipped: ai-edge-litert is not installed (pip install ai-edge-litert)"
        return
    assert rows["tflite"]["precision"] == "int8" and rows["tflite"]["error"] is None  # NAME.int8.tflite
    # an fp32 twin given by hand is refused, not compared
    argv = [*argv[:-2], "--tflite", str(mnist_cnn.with_suffix(".tflite")), "--json", str(out)]
    assert cli.main(argv) == 0
    rows = {r["backend"]: r for r in json.loads(out.read_text())["results"]}
    assert "is fp32 and the model is int8: not a fair peer" in rows["tflite"]["error"]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["missing.onnx"], "does not exist"),
        (["{text}"], "is not a complete ONNX model"),
        (["{lfs}"], "Git LFS pointer"),
        (["{model}", "--batch", "0,1"], "batch sizes must be 1 or more"),
        (["{model}", "--vs", "trt"], "unknown peer(s) trt"),
        (["{model}", "--max-regression", "lots"], "expected a percentage"),
        (["{model}", "--max-regression", "nan"], "expected a finite percentage above 0"),
        (["{model}", "--max-regression", "inf%"], "expected a finite percentage above 0"),
        (["{model}", "--max-regression", "0"], "expected a finite percentage above 0"),
        (["{model}", "--max-regression=-5%"], "expected a finite percentage above 0"),
        (["{model}", "--save-baseline", "{model}"], "is an input of this run"),
        (["{model}", "--save-baseline", "{tmp}/b.json", "--rounds", "3"], "need --rounds 5 or more"),
        (["{model}", "--iters", "0"], "expected a number of at least 1"),
        (["{model}", "--seconds", "-1"], "expected a finite number above 0"),
    ],
)
def test_arguments_are_checked_before_any_model_loads(tmp_path, tiny_model, argv, message, capsys):
    model = tiny_model(tmp_path / "m.onnx")
    (tmp_path / "text.onnx").write_text("not a model")
    (tmp_path / "lfs.onnx").write_text("version https://git-lfs.github.com/spec/v1\noid sha256:0\nsize 1\n")
    with pytest.raises(SystemExit) as info:
        cli.main(
            [a.format(model=model, text=tmp_path / "text.onnx", lfs=tmp_path / "lfs.onnx", tmp=tmp_path) for a in argv]
        )
    assert info.value.code == 2 and message in capsys.readouterr().err


def test_pipeline_benchmark_overlaps_stages(mnist_cnn, tmp_path, digit_video):
    video = digit_video(tmp_path / "v.avi", 120, size=(320, 240))
    out = tmp_path / "p.json"
    assert cli.main([str(mnist_cnn), "--pipeline", str(video), "--batch", "8", "--json", str(out)]) == 0
    report = json.loads(out.read_text())
    assert report["frames"] == report["frames_processed"] == 120
    slowest = min(report["decode_fps"], report["preprocess_fps"], report["inference_fps"])
    assert report["slowest_stage_fps"] == pytest.approx(slowest, abs=0.1)
    assert report["overlap_ratio"] == pytest.approx(report["end_to_end_fps"] / slowest, rel=0.01)


def test_without_the_onnx_package_the_sweep_has_no_peak_but_runs(tmp_path, monkeypatch):
    """The runtime install has no onnx (edgerun demo sweeps on it): no "% peak", a reason, rows."""
    from edgerun.bench import peak as peak_module
    from edgerun.bench.harness import SweepConfig, run_sweep

    from .conftest import make_tiny_model

    real = peak_module.importlib.util.find_spec
    monkeypatch.setattr(peak_module.importlib.util, "find_spec", lambda name: None if name == "onnx" else real(name))
    report = run_sweep(
        SweepConfig(models=(make_tiny_model(tmp_path / "m.onnx", batch=None),), batches=(1,), seconds=0.05)
    )
    assert report["machine"]["peak"]["fp32_gflops"] is None
    assert "onnx package is missing" in report["machine"]["peak"]["source"]
    assert report["results"][0]["p50_ms"] > 0 and report["results"][0]["pct_peak"] is None
    from edgerun.bench.report import markdown

    header = markdown(report).splitlines()[0]
    assert header.endswith("% peak: not measured: the onnx package is missing (pip install 'edgerun[tools]').")


def _rounds(rng, medians_us, spread=0.05, calls=400):
    """Per-round calls (ns) around the given per-round medians, each call off by up to ``spread``."""
    return [m * 1e3 * (1 + spread * rng.random(calls)) for m in medians_us]


def test_ratio_interval_reads_a_steady_difference_through_drifting_rounds():
    """The machine's speed drifts from round to round (x0.8 .. x1.6) and edgerun is 3% faster in
    every round: paired rounds see it (interval below 1); an unpaired bootstrap would not."""
    from edgerun.bench.stats import ratio_interval

    rng = np.random.default_rng(1)
    drift = rng.uniform(0.8, 1.6, 10) * 200
    ours, theirs = _rounds(rng, drift * 0.97), _rounds(rng, drift)
    interval = ratio_interval(ours, theirs)
    assert interval.verdict == "faster" and interval.low < 0.97 < interval.high < 1 and interval.rounds == 10
    # the same calls with the rounds' pairing broken: the drift swamps 3%
    shuffled = ratio_interval(ours, theirs[3:] + theirs[:3])
    assert shuffled.verdict == "level" and shuffled.high - shuffled.low > 5 * (interval.high - interval.low)


def test_ratio_interval_of_equals_is_level_and_needs_rounds():
    from edgerun.bench.stats import ratio_interval

    rng = np.random.default_rng(2)
    drift = rng.uniform(0.9, 1.2, 8) * 100
    interval = ratio_interval(_rounds(rng, drift), _rounds(rng, drift))
    assert interval.verdict == "level" and interval.low < 1 < interval.high
    assert ratio_interval(_rounds(rng, drift * 1.1), _rounds(rng, drift)).verdict == "slower"
    with pytest.raises(ValueError, match="3 or more rounds"):
        ratio_interval(_rounds(rng, drift[:2]), _rounds(rng, drift[:2]))


@pytest.mark.parametrize("q", [10, 50, 90])
def test_resampled_quantiles_are_the_pooled_quantiles_of_the_drawn_rounds(q):
    """Each resample's figure is numpy's inverted-CDF percentile of its drawn rounds' calls laid
    end to end (a round drawn twice counts twice): what the gate and the interval read."""
    from edgerun.bench.stats import _resampled_quantiles

    rng = np.random.default_rng(q)
    rounds = [rng.integers(900, 1100, rng.integers(1, 60)) for _ in range(7)]
    picks = rng.integers(0, 7, (40, 7))
    got = _resampled_quantiles(rounds, picks, q)
    want = [np.percentile(np.concatenate([rounds[i] for i in pick]), q, method="inverted_cdf") for pick in picks]
    np.testing.assert_array_equal(got, want)


@pytest.fixture
def no_measuring(monkeypatch):
    """Fails the test if the sweep or the pipeline benchmark starts: arguments come first."""
    from edgerun.bench import harness, pipeline

    def started(*args, **kwargs):
        raise AssertionError("measuring started before the arguments were refused")

    monkeypatch.setattr(harness, "run_sweep", started)
    monkeypatch.setattr(pipeline, "pipeline_benchmark", started)


def _write_inputs(tmp_path, tiny_model) -> dict:
    """Odd inputs the bench must refuse, as {name: path} for argv templates."""
    import cv2

    from ..runtime.test_model import make_model

    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    (tmp_path / "bad.mp4").write_text("not a video")
    (tmp_path / "videos").mkdir()
    cv2.imwrite(str(tmp_path / "one.png"), np.zeros((28, 28), np.uint8))
    (tmp_path / "link.md").symlink_to(tmp_path / "r.json")
    return {
        "model": tiny_model(tmp_path / "m.onnx"),
        "a": tiny_model(tmp_path / "a" / "m.onnx"),
        "b": tiny_model(tmp_path / "b" / "m.onnx"),
        "c": tiny_model(tmp_path / "c.onnx"),
        "flat": make_model(tmp_path / "flat.onnx", [1, 784]),
        "trunc": _truncated(tiny_model(tmp_path / "whole.onnx"), tmp_path / "trunc.onnx"),
        "tmp": tmp_path,
    }


def _truncated(model, target):
    """The first half of a model's bytes, as an interrupted download leaves it."""
    data = model.read_bytes()
    target.write_bytes(data[: len(data) // 2])
    return target


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        # a model the runtime cannot run: its own message, as edgerun run gives it
        (["{flat}"], "input 'x' has shape [1, 784]; edgerun runs image models with a 4-D input"),
        (["{model}", "{model}"], "is given twice"),
        (["{a}", "{b}"], "have the same file name 'm.onnx'"),
        (["{model}", "--batch", "1,1025"], "batch size 1025: expected at most 1024"),
        (["{model}", "--pipeline", "{tmp}/bad.mp4"], "bad.mp4 could not be opened as a video"),
        (["{model}", "--pipeline", "{tmp}/videos"], "videos is a directory; give one video file"),
        (["{model}", "--pipeline", "{tmp}/one.png"], "one.png is an image; the pipeline benchmark times"),
        (["{model}", "--pipeline", "{tmp}/v.avi", "--markdown", "{tmp}/p.md"], "--json only; --markdown"),
        (["{model}", "--plot", "{tmp}/p.txt"], "OpenCV cannot write images with the suffix '.txt'"),
        (["{model}", "--vs", "tflite", "--tflite", "{tmp}/one.png"], "is not a TFLite flatbuffer"),
        (["{model}", "--vs", "keras", "--keras", "{tmp}/one.png"], "is not a Keras model"),
        (["{model}", "--vs", "tflite", "--tflite", "{tmp}/none.tflite"], "none.tflite is not a file"),
        (["{trunc}"], "trunc.onnx is not a complete ONNX model"),
        (["{model}", "--plot", "{tmp}/p"], "OpenCV cannot write images with the suffix '(none)'"),
        (["{model}", "--json", "{tmp}/r.json", "--markdown", "{tmp}/r.json"], "is the same file as --json"),
        (["{model}", "--json", "{tmp}/r.json", "--markdown", "{tmp}/a/../r.json"], "is the same file as --json"),
        (["{model}", "--json", "{tmp}/r.json", "--markdown", "{tmp}/link.md"], "is the same file as --json"),
        (["{model}", "--json", "{tmp}/r.json", "--save-baseline", "{tmp}/r.json"], "is the same file as --json"),
        (["{model}", "{c}", "--plot", "{tmp}/p.png", "--json", "{tmp}/p_c.png"], "is the same file as --json"),
        (["{model}", "--markdown", "-"], "only --json writes to standard output; give --markdown a file path"),
        (["{model}", "--compare", "-"], "the baseline is read from a file; give the path --save-baseline wrote"),
        ([""], "argument models: expected a path (or a bundled model's name where a model goes), got an empty string"),
        (["{model}", "--json", "-", "--save-baseline", "-"], "only --json writes to standard output"),
        # each was measured and reported twice (a baseline kept one), or an error after the models loaded
        (["{model}", "--batch", "1,8,1"], "batch size 1 is given twice in '1,8,1'; give each once"),
        (["{model}", "--vs", "ort-raw,ort-raw"], "--vs names ort-raw twice; give each peer once"),
        (["{model}", "--seconds", "inf"], "argument --seconds: expected a finite number above 0, got 'inf'"),
        (["{model}", "--threads", "100000"], "argument --threads: expected at most 1024"),
    ],
)
def test_bad_inputs_and_outputs_are_refused_before_measuring(
    tmp_path, tiny_model, digit_video, no_measuring, argv, message, capsys
):
    fill = _write_inputs(tmp_path, tiny_model)
    digit_video(tmp_path / "v.avi", 4)
    with pytest.raises(SystemExit) as info:
        cli.main([a.format(**fill) for a in argv])
    assert info.value.code == 2 and message in capsys.readouterr().err
    assert not (tmp_path / "r.json").exists()


def test_pipeline_video_shorter_than_a_batch_is_refused(tmp_path, tiny_model, digit_video, no_measuring, capsys):
    model, video = tiny_model(tmp_path / "m.onnx"), digit_video(tmp_path / "v.avi", 3)
    with pytest.raises(SystemExit) as info:
        cli.main([str(model), "--pipeline", str(video), "--batch", "8"])
    assert info.value.code == 2 and "has 3 frames, fewer than one batch of 8: give --batch 3" in capsys.readouterr().err


def test_bench_takes_a_bundled_model_by_name(mnist_cnn, tmp_path, monkeypatch):
    """edgerun bench mnist_cnn: the bundled model, as edgerun run and edgerun.load find it."""
    from edgerun.runtime.model import resolve_model_path

    monkeypatch.chdir(tmp_path)  # no file named mnist_cnn here
    out = tmp_path / "r.json"
    argv = ["mnist_cnn", "--batch", "1", "--iters", "2", "--warmup", "0", "--rounds", "1", "--json", str(out)]
    assert cli.main(argv) == 0
    report = json.loads(out.read_text())
    assert report["models"][0]["path"] == str(resolve_model_path("mnist_cnn"))
    assert report["results"][0]["error"] is None


def test_plots_of_several_models_keep_the_asked_format(tmp_path, tiny_model):
    a, b = tiny_model(tmp_path / "a.onnx", batch=None), tiny_model(tmp_path / "b.onnx", batch=None)
    argv = [str(a), str(b), "--batch", "1", "--iters", "2", "--warmup", "0", "--rounds", "1"]
    assert cli.main([*argv, "--plot", str(tmp_path / "p.jpg")]) == 0
    assert sorted(p.name for p in tmp_path.glob("p_*")) == ["p_a.jpg", "p_b.jpg"]
    assert (tmp_path / "p_a.jpg").read_bytes()[:2] == b"\xff\xd8"  # JPEG, not PNG under a .jpg name


def test_bench_runs_on_the_runtime_install_without_onnx(tmp_path, tiny_model):
    """`pip install 'edgerun[cpu]'` (no onnx) is the README's install for bench, but bench refused
    every model: 'onnx is not installed'. Now it measures; a file that is not a model is still
    refused before measuring, by onnxruntime's reading."""
    import subprocess
    import sys

    path = tiny_model(tmp_path / "m.onnx")
    (tmp_path / "text.onnx").write_text("not a model")
    out = tmp_path / "r.json"
    code = (
        "import sys\n"
        "sys.modules['onnx'] = None  # the runtime install: no onnx package\n"
        "from edgerun.cli import main\n"
        "sys.exit(main(sys.argv[1:]))\n"
    )

    def bench(*argv):
        cmd = [sys.executable, "-c", code, "bench", *argv, "--batch", "1", "--iters", "3", "--no-tune"]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=300)

    done = bench(str(path), "--json", str(out))
    assert done.returncode == 0, done.stderr
    row = json.loads(out.read_text())["results"][0]
    assert row["error"] is None and row["p50_ms"] > 0
    refused = bench(str(tmp_path / "text.onnx"))
    assert refused.returncode == 2 and "text.onnx" in refused.stderr and "Traceback" not in refused.stderr
    assert "onnx is not installed" not in refused.stderr


def test_batch_sizes_a_fixed_batch_model_cannot_run_are_skipped_in_one_line(tmp_path, tiny_model, caplog):
    """A model exported with its batch fixed at 1 (PyTorch's default) gave a 300-character
    ModelError row and a warning per batch size for every size but 1 of bench's default list.
    Now those sizes are skipped with one warning naming them, and their rows say why."""
    path = tiny_model(tmp_path / "fixed.onnx", batch=1)
    out = tmp_path / "r.json"
    with caplog.at_level("WARNING"):
        assert cli.main([str(path), "--batch", "1,2,4", "--iters", "3", "--no-tune", "--json", str(out)]) == 0
    rows = {r["batch"]: r for r in json.loads(out.read_text())["results"]}
    assert rows[1]["error"] is None and rows[1]["p50_ms"] > 0
    for batch in (2, 4):
        assert rows[batch]["error"] == "skipped: the model's batch axis is fixed at 1" and rows[batch]["p50_ms"] is None
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert warnings == [
        "fixed.onnx: the model's batch axis is fixed at 1: batch 2,4 skipped (re-export it with a dynamic batch axis "
        "to measure them)"
    ]


def test_peers_feed_a_float16_input_model_its_own_type(tmp_path):
    """A user's model with a float16 input: edgerun ran it, but ort-raw and OpenVINO were fed the
    sweep's float32 batch and failed ('Unexpected input data type'). Now each feeds the model's type."""
    import onnx
    from onnx import TensorProto, helper

    weight = helper.make_tensor("W", TensorProto.FLOAT, [3 * 8 * 8, 4], np.linspace(-1, 1, 768, dtype=np.float32))
    graph = helper.make_graph(
        [
            helper.make_node("Cast", ["x"], ["xf"], to=TensorProto.FLOAT),
            helper.make_node("Flatten", ["xf"], ["f"]),
            helper.make_node("MatMul", ["f", "W"], ["y"]),
        ],
        "half",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT16, ["n", 3, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 4])],
        [weight],
    )
    path = tmp_path / "half.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=9), str(path))
    out = tmp_path / "r.json"
    peers = "ort-raw,openvino" if importlib.util.find_spec("openvino") is not None else "ort-raw"
    argv = [str(path), "--batch", "1,2", "--iters", "3", "--no-tune", "--vs", peers, "--json", str(out)]
    assert cli.main(argv) == 0
    rows = json.loads(out.read_text())["results"]
    assert len(rows) == 2 * (1 + peers.count(",") + 1)
    for row in rows:
        assert row["error"] is None and row["p50_ms"] > 0, row


def test_bench_writes_outputs_whose_names_are_near_the_file_system_limit(tmp_path, tiny_model):
    """A 250-byte name is a valid file name, but its temporary twin (".NAME.XXXXXXXX.partial.json")
    was not: refused with ENAMETOOLONG after the whole run had been measured."""
    model, name = tiny_model(tmp_path / "m.onnx"), "x" * 245
    report, table = tmp_path / f"{name}.json", tmp_path / f"{name}.md"
    argv = [str(model), "--batch", "1", "--iters", "2", "--warmup", "0", "--rounds", "1"]
    assert cli.main([*argv, "--json", str(report), "--markdown", str(table)]) == 0
    assert json.loads(report.read_text())["results"] and table.read_text().startswith("Measured")
    assert [p.name for p in tmp_path.iterdir() if ".partial" in p.name] == []


def test_bench_writes_its_files_before_a_full_standard_output(tmp_path, tiny_model):
    """`edgerun bench ... --json r.json > full-disk`: the table printed first failed and the report
    was never written; the files come first now, and standard output's failure is one line, exit 5."""
    import subprocess
    import sys

    model, report, table = tiny_model(tmp_path / "m.onnx"), tmp_path / "r.json", tmp_path / "r.md"
    argv = [str(model), "--batch", "1", "--iters", "2", "--warmup", "0", "--rounds", "1"]
    with open("/dev/full", "wb") as full:
        done = subprocess.run(
            [sys.executable, "-m", "edgerun", "-q", "bench", *argv, "--json", str(report), "--markdown", str(table)],
            stdout=full,
            stderr=subprocess.PIPE,
            text=True,
            timeout=120,
        )
    assert done.returncode == 5 and "cannot write to standard output: no space left" in done.stderr, done.stderr
    assert json.loads(report.read_text())["results"][0]["p50_ms"] > 0
    assert table.read_text().startswith("Measured")


@pytest.mark.parametrize(("signum", "code"), [("SIGINT", 130), ("SIGTERM", 143)])
def test_an_interrupted_bench_keeps_what_it_measured(tmp_path, tiny_model, signum, code):
    """Ctrl-C or a CI runner's SIGTERM in the middle of a sweep lost every row measured (and
    SIGTERM said nothing): the rows measured are written, no baseline is, exit 130 / 143."""
    import signal
    import subprocess
    import sys

    model, report, baseline = tiny_model(tmp_path / "m.onnx", batch=None), tmp_path / "r.json", tmp_path / "b.json"
    argv = [str(model), "--batch", "1,2", "--seconds", "2.5", "--rounds", "5", "--json", str(report)]
    proc = subprocess.Popen(
        [sys.executable, "-m", "edgerun", "bench", *argv, "--markdown", str(tmp_path / "r.md"), "--save-baseline",
         str(baseline)],
        stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True,
    )  # fmt: skip
    for line in proc.stderr:  # batch 2 starts once batch 1's rows are whole (5 rounds of 0.5 s blocks)
        if "m.onnx  batch 2:" in line:
            break
    proc.send_signal(getattr(signal, signum))
    err = proc.stderr.read()
    assert proc.wait(timeout=120) == code, err
    assert f"interrupted ({signum}): the 1 rows measured before it are in {report}" in err
    assert "no baseline written" in err and not baseline.exists()
    saved = json.loads(report.read_text())
    assert saved["interrupted"] == signum
    assert [(r["batch"], r["error"]) for r in saved["results"]][0] == (1, None)
    assert saved["results"][0]["p50_ms"] > 0 and len(saved["results"][0]["round_us"]) == 5
    assert "| edgerun | fp32 | 1 |" in (tmp_path / "r.md").read_text()


def test_bench_takes_size_and_layout_for_a_foreign_model_of_any_size(tmp_path):
    """A foreign model with a dynamic height and width could not be benched at all (the refusal
    named --size, which bench did not take); with --size every row runs, peers in its layout."""
    from edgerun.bench.cli import main

    from ..runtime.test_model import make_any_size_model

    model = make_any_size_model(tmp_path / "dyn.onnx")
    with pytest.raises(SystemExit) as info:
        main([str(model), "--batch", "1", "--iters", "3"])
    assert info.value.code == 2
    out = tmp_path / "r.json"
    argv = [str(model), "--size", "20", "16", "--batch", "1,2", "--iters", "5", "--vs", "ort-raw", "--json", str(out)]
    assert main(argv) == 0
    rows = json.loads(out.read_text())["results"]
    assert [(r["backend"], r["batch"]) for r in rows if r["error"] is None] == [
        ("edgerun", 1), ("edgerun", 2), ("ort-raw", 1), ("ort-raw", 2)
    ]  # fmt: skip


def test_a_baseline_of_another_input_size_is_refused_before_measuring(tmp_path):
    """--compare with another --size would judge rows of different work: exit 2, saying both sizes."""
    from edgerun.bench.cli import main

    from ..runtime.test_model import make_any_size_model

    model = make_any_size_model(tmp_path / "dyn.onnx")
    baseline = tmp_path / "base.json"
    common = [str(model), "--batch", "1", "--seconds", "0.2", "--rounds", "10"]
    assert main([*common, "--size", "20", "16", "--save-baseline", str(baseline)]) == 0
    assert json.loads(baseline.read_text())["models"][0]["input"] == [20, 16, 3]
    with pytest.raises(SystemExit) as info:
        main([*common, "--size", "32", "32", "--compare", str(baseline)])
    assert info.value.code == 2
