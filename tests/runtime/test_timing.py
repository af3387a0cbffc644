"""The one percentile function matches numpy's linear method without importing numpy.ma."""

from __future__ import annotations

import subprocess
import sys

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
