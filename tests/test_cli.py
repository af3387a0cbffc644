from __future__ import annotations

import subprocess
import sys

from edgerun.runtime import cli


def test_help_lists_subcommands(capsys):
    assert cli.main(["--help"]) == 0
    out = capsys.readouterr().out
    for name in cli.SUBCOMMANDS:
        assert name in out


def test_unknown_subcommand(capsys):
    assert cli.main(["frobnicate"]) == 2
    assert "unknown subcommand 'frobnicate'" in capsys.readouterr().err


def test_console_script_runs():
    out = subprocess.run(
        [sys.executable, "-m", "edgerun.runtime.cli", "--help"], capture_output=True, text=True, check=True
    )
    assert "train" in out.stdout


def test_every_subcommand_resolves_to_a_function():
    import importlib

    assert set(cli.SUBCOMMANDS) == {"train", "export", "inspect", "run", "bench", "tune", "demo"}
    for target, _, _ in cli.SUBCOMMANDS.values():
        module, function = target.split(":")
        assert callable(getattr(importlib.import_module(module), function)), target
