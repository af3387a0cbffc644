"""A hostile-input sweep of the Python API: each test is an input a user passed that was misread,
silently ignored, or refused with a bare Python, numpy or onnxruntime error."""

from __future__ import annotations

import re

import numpy as np
import pytest

import edgerun
from edgerun.runtime.model import SessionConfigError


@pytest.fixture(scope="module")
def model():
    return edgerun.load("mnist_cnn", tune=False)


@pytest.fixture(scope="module")
def digits(mnist_test):
    images, labels = mnist_test
    return images[:5, ..., None], [str(v) for v in labels[:5]]


@pytest.mark.parametrize("batch", [0, False, True, -1, 1.5, 2.0, "4", 1025])
@pytest.mark.parametrize("call", ["__call__", "predict", "stream"])
def test_a_per_call_batch_out_of_range_is_refused_as_load_refuses_it(model, digits, call, batch):
    # 0 and False fell back to the model's batch silently, True ran as 1, the rest were bare ValueErrors
    with pytest.raises(SessionConfigError, match=r"batch must be a whole number from 1 to 1024, got"):
        list(getattr(model, call)(digits[0], batch=batch))


@pytest.mark.parametrize("call", ["__call__", "predict", "stream"])
def test_a_per_call_batch_may_be_a_numpy_integer_as_at_load(model, digits, call):
    images, labels = digits
    assert [r.label for r in getattr(model, call)(images, batch=np.int64(4))] == labels


@pytest.mark.parametrize("max_frames", [0, -1, 1.5, "2", True])
def test_stream_max_frames_out_of_range_is_refused_not_a_crash_in_the_reader_thread(model, digits, max_frames):
    # '2' killed the reader thread with a TypeError traceback and gave no results; -1 gave none, silently
    with pytest.raises(SessionConfigError, match="max_frames must be a whole number >= 1"):
        model.stream(digits[0], max_frames=max_frames)


def test_stream_max_frames_stops_after_that_many(model, digits):
    images, labels = digits
    assert [r.label for r in model.stream(images, max_frames=np.int64(2))] == labels[:2]


class _PathLike:
    """An os.PathLike that is not a pathlib.Path (a user's own path type, a pytest LocalPath...)."""

    def __init__(self, path) -> None:
        self._path = path

    def __fspath__(self):
        return self._path


@pytest.fixture(scope="module")
def png_dir(digits, tmp_path_factory):
    import cv2

    folder = tmp_path_factory.mktemp("pngs")
    for i, image in enumerate(digits[0]):
        cv2.imwrite(str(folder / f"{i}.png"), image)
    return folder


@pytest.mark.parametrize("encode", [False, True])
def test_any_os_pathlike_names_its_path_not_its_repr(model, digits, png_dir, encode):
    # was "<...PL object at 0x...> does not exist": open_source took str() of it
    path = str(png_dir)
    for source in (_PathLike(path.encode() if encode else path), _PathLike(str(png_dir / "0.png"))):
        results = model(source)
        assert results and all(r.ok for r in results), [r.error for r in results]
    assert [r.label for r in model(_PathLike(path))] == digits[1]


def test_an_open_file_is_refused_with_what_to_pass_instead(model, png_dir):
    # a file object iterates its lines: "item 0 of the inputs is bytes (128 bytes)"
    import io

    with open(png_dir / "0.png", "rb") as handle:
        for x in (handle, io.BytesIO(handle.read())):
            with pytest.raises(edgerun.SourceError, match=r"an open file: pass its path \(model\(f.name\)\)"):
                model(x)
            with pytest.raises(edgerun.SourceError, match="predict takes frames in memory"):
                model.predict(x)


@pytest.mark.parametrize("make", [set, frozenset])
def test_a_set_is_refused_as_it_has_no_order(model, png_dir, make):
    paths = make(str(p) for p in png_dir.glob("*.png"))
    with pytest.raises(edgerun.SourceError, match=r"a set has no order.*pass a list \(sorted\(inputs\)\)"):
        model(paths)


@pytest.mark.filterwarnings("ignore::PendingDeprecationWarning")
def test_a_numpy_matrix_is_one_frame_like_any_2d_array(model, digits):
    # np.matrix stays 2-D when indexed: preprocessing failed with numpy's own concatenate message
    image = digits[0][0, :, :, 0]
    (result,) = model(np.asmatrix(image))
    assert result.ok and result.label == digits[1][0]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"spinning": "no"}, "spinning must be True or False, got str 'no'"),  # "no" switched spinning on
        ({"io_binding": "yes"}, "io_binding must be True or False"),
        ({"prepack": 0}, "prepack must be True or False, got int 0"),
        ({"tune": "no"}, "tune must be True .* or False, got str 'no'"),
        ({"tune": None}, "tune must be True .* or False, got None"),
        ({"graph": 1}, r"graph must be the path of a tuned graph file \(str or Path\) or None, got int 1"),
    ],
)
def test_switches_and_the_graph_file_are_checked_at_load(options, message):
    with pytest.raises(SessionConfigError, match=message):
        edgerun.load("mnist_cnn", **options)


def test_threads_may_be_a_numpy_integer_as_batch_and_topk_may(digits):
    images, labels = digits
    model = edgerun.load("mnist_cnn", tune=False, threads=np.int64(1), spinning=np.bool_(False), batch=np.int64(2))
    assert [r.label for r in model(images)] == labels


def test_describing_options_take_numpy_values(digits):
    # size (np.int64(28), 28) and mean np.float32 passed edgerun.load's checks, then the metadata refused
    # them ("must be [height, width] of whole numbers"); mean=np.zeros(1) was read as one value, an array
    images, labels = digits
    model = edgerun.load(
        "mnist_cnn",
        tune=False,
        size=(np.int64(28), 28),
        scale=np.float32(1 / 255),
        mean=np.zeros(1),
        std=np.float64(1.0),
        labels=np.array([str(i) for i in range(10)]),
    )
    assert model.metadata.preprocessing.size == (28, 28) and model.classes == tuple("0123456789")
    assert [r.label for r in model(images)] == labels
    assert edgerun.load("mnist_cnn", tune=False, size=np.array([28, 28])).metadata.preprocessing.size == (28, 28)


@pytest.mark.parametrize(
    ("name", "meant"),
    [("Topk", "topk"), ("top_k", "topk"), ("batch_size", "batch"), ("device", "provider"), ("treshold", "threshold")],
)
def test_an_unknown_option_says_which_known_one_it_may_mean(name, meant):
    with pytest.raises(TypeError, match=rf"unknown option\(s\) {name}; known: .*'{name}': did you mean '{meant}'\?"):
        edgerun.load("mnist_cnn", **{name: 1})


@pytest.mark.parametrize("shape", [(1, 7, 9, 1), (2, 27, 100, 1), (1, 1, 1, 1)])
def test_run_on_a_batch_onnxruntime_refuses_is_a_model_error_saying_the_smallest_input(mnist_fcn, shape):
    # was onnxruntime's own InvalidArgument ("Non-zero status code returned while running Conv node")
    localizer = edgerun.load(mnist_fcn, tune=False)
    pattern = rf"could not run a batch of shape {re.escape(str(shape))} .* at least 28x28 pixels"
    with pytest.raises(edgerun.ModelError, match=pattern):
        localizer.run(np.zeros(shape, np.float32))
    assert localizer.run(np.zeros((1, 28, 28, 1), np.float32)).shape == (1, 1, 1, 10)


@pytest.mark.parametrize(
    ("model_arg", "message"),
    [
        ("/tmp/a\x00.onnx", r"contains a NUL byte"),  # was ValueError: embedded null byte
        ("/tmp/" + "a" * 5000 + ".onnx", r"cannot be used: .*\(ENAMETOOLONG\)"),  # was a bare OSError
        ("https://user:pw@example.com/m.onnx", r"https://user:\*\*\*@example.com/m.onnx is a URL; .*download it first"),
        ("mnist_cnn.onnx", r"does not exist here; for the bundled model give its name: 'mnist_cnn'"),
    ],
)
def test_load_refuses_a_name_that_is_no_local_file_with_what_to_give(model_arg, message):
    with pytest.raises(edgerun.ModelError, match=message):
        edgerun.load(model_arg, tune=False)


def test_load_takes_a_pathlike_naming_bytes(mnist_cnn):
    # was TypeError: argument should be a str object or an os.PathLike object returning str
    assert edgerun.load(_PathLike(bytes(mnist_cnn)), tune=False).name == "mnist_cnn"


def test_a_labels_file_saved_with_a_byte_order_mark_reads_the_first_name_plain(tmp_path, digits):
    # Windows Notepad writes UTF-8 with a BOM: the first class was '\ufeffzero'
    names = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
    labels = tmp_path / "labels.txt"
    labels.write_text("\r\n".join(names), encoding="utf-8-sig")
    model = edgerun.load("mnist_cnn", tune=False, labels=labels)
    assert model.classes == tuple(names)
    assert [r.label for r in model(digits[0])] == [names[int(v)] for v in digits[1]]


@pytest.mark.parametrize(
    ("style", "message"),
    [
        ({"thickness": -1}, "thickness must be a whole number of pixels >= 1, got -1"),  # filled every box
        ({"thickness": 0}, "thickness must be a whole number"),
        ({"zoom": 0}, "zoom must be a number >= 1"),  # 0, -1 and NaN were ignored
        ({"zoom": float("nan")}, "zoom must be a number >= 1"),
        ({"zoom": 1000}, "larger than 16384 pixels a side"),  # a 2.3 GB picture of one digit
        ({"font_scale": 0}, "font_scale must be a number above 0"),
        ({"image": "page.png"}, "cannot draw on str 'page.png': a frame must be a numpy array"),
        ({"image": np.zeros((0, 28), np.uint8)}, "cannot draw on a numpy array of shape"),
        ({"image": np.zeros((28, 28, 5), np.uint8)}, r"HxW, HxWx1, HxWx3 or HxWx4, got shape \(28, 28, 5\)"),
    ],
)
def test_plot_refuses_a_style_or_image_it_cannot_draw_with_a_plot_error(model, digits, style, message):
    (result,) = model(digits[0][0])
    with pytest.raises(edgerun.PlotError, match=message):
        result.plot(**style)


def test_plot_names_its_own_styles_for_an_unknown_one_and_draws_with_the_known(model, digits):
    (result,) = model(digits[0][0])
    with pytest.raises(TypeError, match=r"Result.plot\(\) got unknown style\(s\) color; known: zoom, thickness"):
        result.plot(color=(0, 0, 255))  # was "Annotator.__init__() got an unexpected keyword argument"
    assert result.plot(zoom=2, thickness=np.int64(2), font_scale=0.6).shape == (56, 56, 3)
    (failed,) = model(["missing.png"])
    with pytest.raises(edgerun.PlotError, match="no image to draw on"):
        failed.plot()
