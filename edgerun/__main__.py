"""``python -m edgerun`` is the ``edgerun`` command."""

from edgerun.cli import console

console()
