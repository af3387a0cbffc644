"""python -m edgerun.bench.pair: two models of one input, interleaved, and the speed-up."""

from __future__ import annotations

from edgerun.bench import pair


def test_pair_prints_one_speed_up_per_batch(mnist_cnn, capsys):
    int8 = mnist_cnn.with_name("mnist_cnn.int8.onnx")
    argv = [str(mnist_cnn), str(int8), "--batch", "1,4", "--rounds", "2", "--seconds", "0.02", "--threads", "1"]
    assert pair.main(argv) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert "speed-up" in lines[0]
    rows = [line.split() for line in lines[1:]]
    assert [row[0] for row in rows] == ["1", "4"]
    for _, base, other, ratio in rows:
        assert float(base) > 0 and float(other) > 0
        # the ratio is of the unrounded times; the times are printed to 3 decimals, the ratio to 2
        b, o, half = float(base), float(other), 0.0005
        assert (b - half) / (o + half) - 0.005 <= float(ratio.rstrip("x")) <= (b + half) / (o - half) + 0.005
