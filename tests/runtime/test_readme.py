"""The README's Python API examples run as written."""

from __future__ import annotations

import re
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[2]


def readme_python_blocks() -> list[str]:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    section = text.split("## Python API", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```python\n(.*?)```", section, flags=re.S)


def test_readme_python_api_examples_run(mnist_test, tmp_path, monkeypatch, capsys):
    images, labels = mnist_test
    (tmp_path / "digits").mkdir()
    for i in range(3):
        cv2.imwrite(str(tmp_path / "digits" / f"{i}.png"), images[i])
    page = np.zeros((84, 140), np.uint8)
    page[28:56, 28:56], page[28:56, 84:112] = images[3], images[4]
    cv2.imwrite(str(tmp_path / "page.png"), page)
    monkeypatch.chdir(tmp_path)
    blocks = readme_python_blocks()
    assert len(blocks) == 2
    exec(compile(blocks[0], "README block 1", "exec"), {})
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[1] for line in lines] == [str(v) for v in labels[:3]]
    exec(compile(blocks[1], "README block 2", "exec"), {})
    found = sorted(line.split()[0] for line in capsys.readouterr().out.splitlines())
    assert found == sorted([str(labels[3]), str(labels[4])])
    assert cv2.imread("page_annotated.png").shape == (84, 140, 3)
