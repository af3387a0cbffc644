"""The one percentile function matches numpy's linear method without importing numpy.ma; interleaved
blocks settle, rotate, keep long calls and drop failing callables."""

from __future__ import annotations

import subprocess
import sys
import time

import numpy as np
import pytest

from edgerun.runtime.timing import percentile, percentile_ms


@pytest.mark.parametrize("size", [1, 2, 3, 10, 101, 1000])
@pytest.mark.parametrize("q", [0, 1, 25, 50, 90, 99, 99.9, 100])
def test_matches_numpy_linear(size, q):
    values = np.random.default_rng(size).integers(0, 10**9, size)
    assert percentile(values, q) == pytest.approx(float(np.percentile(values, q, method="linear")), rel=1e-12)
    assert percentile_ms(values, q) == pytest.approx(float(np.percentile(values, q)) / 1e6, rel=1e-12)


@pytest.mark.parametrize(("values", "q"), [([], 50), ([1.0], -1), ([1.0], 101)])
def test_bad_input(values, q):
    with pytest.raises(ValueError):
        percentile(values, q)


def test_does_not_import_numpy_ma():
    code = (
        "import sys; from edgerun.runtime.timing import percentile; percentile([3, 1, 2], 50); "
        "print('numpy.ma' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def _clock():
    """Callables that record the order they were called in, each call taking about 1 ms."""
    order: list[str] = []

    def make(name):
        def call():
            order.append(name)
            time.sleep(0.001)

        return call

    return order, make


def test_measure_blocks_runs_each_callable_in_one_block_and_rotates():
    from edgerun.runtime.timing import measure_blocks

    order, make = _clock()
    fns = {"a": make("a"), "b": make("b"), "c": make("c")}
    samples, errors = measure_blocks(fns, block_calls=6, turn=1)
    assert errors == {}
    assert order == ["b"] * 9 + ["c"] * 9 + ["a"] * 9  # turn 1 starts at the second; 3 settling calls each
    assert {k: len(v) for k, v in samples.items()} == {"a": 6, "b": 6, "c": 6}  # as many kept as asked


def test_measure_blocks_does_not_keep_calls_in_the_settling_time():
    from edgerun.runtime.timing import measure_blocks

    order, make = _clock()
    samples, _ = measure_blocks({"a": make("a")}, block_s=0.08, settle_s=0.03)
    kept, run = len(samples["a"]), len(order)
    assert run > kept >= 1
    # about 30 of about 80 ms of ~1 ms calls were not kept
    assert 0.2 < (run - kept) / run < 0.6


def test_measure_blocks_keeps_a_long_call_and_drops_one_that_raises():
    from edgerun.runtime import timing

    def boom():
        raise RuntimeError("no")

    long_calls = []

    def slow():
        long_calls.append(1)
        time.sleep(timing.LONG_CALL_S * 1.2)

    samples, errors = timing.measure_blocks({"slow": slow, "boom": boom}, block_s=0.05)
    assert len(long_calls) == 1 and len(samples["slow"]) == 1  # one long call is enough
    assert "boom" not in samples and isinstance(errors["boom"], RuntimeError)
