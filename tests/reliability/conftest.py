"""Helpers for the reliability tests: run ``edgerun`` as a subprocess (optionally as an
unprivileged user, for permission cases), and small fixtures."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "scripts"))


def _edgerun(*argv, cwd=None, env=None, user=None, stdout=subprocess.PIPE, timeout=120):
    """Run ``python -m edgerun ARGV``; as ``user`` (uid, gid) when given (root only)."""
    from reliability_cases import AS_USER

    command = [sys.executable, "-m", "edgerun", *map(str, argv)]
    if user is not None:
        command = [sys.executable, "-c", AS_USER, str(user[0]), str(user[1]), *map(str, argv)]
    return subprocess.run(
        command,
        cwd=cwd,
        env={**os.environ, **(env or {})},
        stdout=stdout,
        stderr=subprocess.PIPE,
        timeout=timeout,
        check=False,
    )


@pytest.fixture
def edgerun():
    """``edgerun(*argv, env=, user=, stdout=)`` runs ``python -m edgerun`` and returns the
    CompletedProcess (stdout and stderr as bytes)."""
    return _edgerun


@pytest.fixture(scope="session")
def unprivileged():
    """(uid, gid) to run as when the tests run as root (made with useradd), or None when the
    tests already run as a normal user (file permissions then apply as they are)."""
    if os.geteuid() != 0:
        return None
    from reliability_cases import ensure_user

    try:
        return ensure_user()
    except (OSError, subprocess.CalledProcessError) as exc:
        pytest.skip(f"running as root and no unprivileged user could be made ({exc}): permission cases need one")


@pytest.fixture
def digits():
    """``digits(folder, n)`` writes n 28x28 digit PNGs and returns their paths."""
    from reliability_cases import digits as make

    return make
