from __future__ import annotations

import importlib
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from edgerun import cli


def test_help_lists_subcommands(capsys):
    assert cli.main(["--help"]) == 0
    out = capsys.readouterr().out
    for name in cli.SUBCOMMANDS:
        assert f"  {name} " in out


def test_unknown_subcommand(capsys):
    assert cli.main(["frobnicate"]) == 2
    assert "unknown subcommand 'frobnicate'" in capsys.readouterr().err


def test_installed_console_script_runs():
    script = shutil.which("edgerun", path=str(Path(sys.executable).parent))
    if script is None:
        pytest.skip("edgerun is not installed as a console script in this environment")
    out = subprocess.run([script, "--version"], capture_output=True, text=True, check=True)
    from edgerun import __version__

    assert out.stdout.strip() == f"edgerun {__version__}"


def test_every_subcommand_resolves_to_a_function():
    assert set(cli.SUBCOMMANDS) >= {"train", "export", "inspect", "run", "bench", "tune", "demo"}
    for target, _ in cli.SUBCOMMANDS.values():
        module, function = target.split(":")
        assert callable(getattr(importlib.import_module(module), function)), target


@pytest.mark.parametrize(
    ("module", "extra"),
    [
        ("onnxruntime", "edgerun[cpu]"),
        ("cv2", "edgerun[cpu]"),
        ("onnx", "edgerun[tools]"),
        ("tensorflow", "edgerun[train]"),
    ],
)
def test_a_missing_dependency_is_one_line_naming_the_extra(monkeypatch, capsys, module, extra):
    def fails(_argv):
        raise ModuleNotFoundError(f"No module named '{module}'", name=module)

    monkeypatch.setitem(sys.modules, "edgerun_fake_cmd", type(sys)("edgerun_fake_cmd"))
    sys.modules["edgerun_fake_cmd"].main = fails
    monkeypatch.setitem(cli.SUBCOMMANDS, "fake", ("edgerun_fake_cmd:main", "a command whose dependency is missing"))
    assert cli.main(["fake"]) == 2
    err = capsys.readouterr().err
    assert extra in err and "unexpected" not in err and len(err.strip().splitlines()) == 1


def test_version_loads_no_runtime():
    code = (
        "import sys; from edgerun.cli import main; main(['--version']); "
        "print(sorted(m for m in ('numpy', 'cv2', 'onnxruntime') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().endswith("[]")
