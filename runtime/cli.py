"""The ``edgerun`` command: one entry point that hands each subcommand to its package.

The runtime owns the entry point because it is the one package every install has (an edge
device may have nothing else). Other packages' subcommands are named here by module path and
imported only when asked for, so ``edgerun run`` never loads TensorFlow.
"""

from __future__ import annotations

import importlib
import logging
import sys

logger = logging.getLogger(__name__)

#: subcommand -> (module with ``main(argv) -> int``, one-line help, extra that provides it)
SUBCOMMANDS: dict[str, tuple[str, str, str]] = {
    "train": ("edgerun.train.cli", "train a registry model (writes models/NAME.keras + .json)", "train"),
}

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130

USAGE = """usage: edgerun [-v|-q] {subcommands} ...

edgerun: an ONNX edge-inference runtime with a benchmarking harness.

subcommands:
{table}

Run 'edgerun SUBCOMMAND --help' for a subcommand's options.
"""


def _usage() -> str:
    table = "\n".join(f"  {name:<8} {help_}" for name, (_, help_, _) in SUBCOMMANDS.items())
    return USAGE.format(subcommands="{" + ",".join(SUBCOMMANDS) + "}", table=table)


def configure_logging(verbosity: int) -> None:
    level = {-1: logging.WARNING, 0: logging.INFO}.get(verbosity, logging.DEBUG)
    logging.basicConfig(
        level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S"
    )


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    verbosity = 0
    while argv and argv[0] in ("-v", "--verbose", "-q", "--quiet"):
        verbosity += 1 if argv.pop(0) in ("-v", "--verbose") else -1
    if not argv or argv[0] in ("-h", "--help"):
        print(_usage())
        return EXIT_OK if argv else EXIT_USAGE
    if argv[0] == "--version":
        from importlib.metadata import version

        print(f"edgerun {version('edgerun')}")
        return EXIT_OK
    name, rest = argv[0], argv[1:]
    if name not in SUBCOMMANDS:
        print(
            f"edgerun: unknown subcommand {name!r}; choose one of: {', '.join(SUBCOMMANDS)}", file=sys.stderr
        )
        return EXIT_USAGE
    module_name, _, extra = SUBCOMMANDS[name]
    configure_logging(verbosity)
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        print(
            f"edgerun {name}: a dependency is missing ({exc.name or exc}). "
            f"Install it with: pip install 'edgerun[{extra}]'",
            file=sys.stderr,
        )
        return EXIT_USAGE
    try:
        return int(module.main(rest) or 0)
    except KeyboardInterrupt:
        print(f"edgerun {name}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
