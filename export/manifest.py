"""``models/MANIFEST.json``: what each committed model file is, and how it was made.

``python -m edgerun.export.manifest models`` (run by ``make models``) lists every ``.onnx``,
``.keras`` and ``.tflite`` in the folder with its sha256 and size; ONNX entries add the model's
own metadata (opset, variant, training data with file hashes and counts, test accuracy and on
which data, the commands that made it, date). Data files are named by basename and sha256, not
by the path of the machine that trained them.
"""

from __future__ import annotations

import json
import sys
from datetime import datetime, timezone
from pathlib import Path

from edgerun.runtime.files import sha256_file

MANIFEST = "MANIFEST.json"
SUFFIXES = (".onnx", ".keras", ".tflite")
SCHEMA = 1


def _data_summary(data: dict | None) -> dict | None:
    if not data:
        return None
    out = {}
    for split, info in data.items():
        if not info:
            continue
        out[split] = {
            "files": [Path(f).name for f in info.get("files", [])],
            "sha256": info.get("sha256", []),
            "samples": info.get("samples"),
        }
    return out


def entry(path: Path) -> dict:
    """The manifest entry of one model file."""
    item = {"file": path.name, "sha256": sha256_file(path), "bytes": path.stat().st_size}
    if path.suffix != ".onnx":
        parts = path.name.split(".")
        item["twin_of"] = parts[0]
        item["variant"] = parts[1] if len(parts) > 2 else "fp32"  # NAME.int8.tflite: the int8 twin
        return item
    import onnx

    from edgerun.runtime.metadata import read_metadata

    meta = read_metadata(onnx.load(str(path), load_external_data=False))
    if meta is None:
        return item
    card_command = None
    card_path = path.with_name(path.name.split(".")[0] + ".json")
    if card_path.is_file():
        import json

        card_command = json.loads(card_path.read_text(encoding="utf-8")).get("command")
    test = meta.test or {}
    test_files = ((meta.data or {}).get("test") or {}).get("files") or []
    item.update(
        {
            "name": meta.name,
            "task": meta.task,
            "variant": meta.variant,
            "opset": meta.opset,
            "training_data": _data_summary(meta.data),
            "test_accuracy": test.get("accuracy"),
            "test_data": {"files": [Path(f).name for f in test_files], "samples": test.get("samples")}
            if test
            else None,
            "commands": [c for c in (card_command, meta.command) if c],
            "created": meta.created,
            "source_sha256": meta.source_sha256,
        }
    )
    return item


def build(directory: Path, names: list[str] | None = None) -> dict:
    """Entries for ``names`` in ``directory`` (default: every model file there)."""
    directory = Path(directory)
    if names:
        files = [directory / n for n in names]
        missing = [str(f) for f in files if not f.is_file()]
        if missing:
            raise FileNotFoundError(f"not in {directory}: {', '.join(missing)}")
    else:
        files = sorted(p for p in directory.iterdir() if p.suffix in SUFFIXES and not p.name.startswith("."))
    return {
        "schema": SCHEMA,
        "written": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "models": [entry(p) for p in files],
    }


def write(directory: Path, names: list[str] | None = None) -> Path:
    from edgerun.runtime.files import write_json_atomic

    target = Path(directory) / MANIFEST
    write_json_atomic(target, build(directory, names))
    return target


def refresh(directory: Path, names: list[str], command: str) -> Path:
    """Re-hash ``names`` after a rewrite that keeps their metadata (``edgerun.export.simplify``):
    size and sha256 are updated and ``command`` is added to each entry's commands; the rest of
    the entry (training data, accuracy, the commands that made it) stays as it was."""
    from edgerun.runtime.files import write_json_atomic

    target = Path(directory) / MANIFEST
    data = json.loads(target.read_text(encoding="utf-8"))
    items = {item["file"]: item for item in data["models"]}
    for name in names:
        if name not in items:
            raise FileNotFoundError(f"{name} is not in {target}")
        path = Path(directory) / name
        items[name].update({"sha256": sha256_file(path), "bytes": path.stat().st_size})
        items[name]["commands"] = [*items[name].get("commands", []), command]
    data["written"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
    return write_json_atomic(target, data)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) >= 3 and args[1] == "--refresh":
        # python -m edgerun.export.manifest MODELS_DIR --refresh "COMMAND" FILE ...
        print(f"wrote {refresh(Path(args[0]), args[3:], args[2])}")
        return 0
    if not args or not Path(args[0]).is_dir():
        print("usage: python -m edgerun.export.manifest MODELS_DIR [FILE ...]", file=sys.stderr)
        return 2
    try:
        path = write(Path(args[0]), args[1:] or None)
    except FileNotFoundError as exc:
        print(f"manifest: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
