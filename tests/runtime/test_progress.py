from __future__ import annotations

from edgerun.runtime.progress import progress_bar
from edgerun.runtime.run import Run, RunConfig
from edgerun.runtime.sources import open_source


def test_no_bar_when_stderr_is_not_a_terminal():
    assert progress_bar(10, "x") is None  # pytest captures stderr: not a terminal


def test_a_finite_run_counts_every_input_on_its_bar(mnist_cnn, mnist_pngs, capsys):
    import edgerun

    model = edgerun.load(mnist_cnn)
    with Run(model, open_source(str(mnist_pngs[0])), config=RunConfig(batch=8, max_frames=40, progress=True)) as run:
        assert run._bar.total == 40  # the source's size, capped by --max-frames
        count = sum(1 for _ in run)
        assert run._bar.n == count == 40
    assert "mnist_cnn:" in capsys.readouterr().err  # drawn on stderr (tqdm throttles its redraws)
