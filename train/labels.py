"""The 1,000 ImageNet class names, shipped with the package so labelling never downloads.

The list is the standard ILSVRC-2012 order (the one ``keras.applications`` decodes), written
with underscores as ``decode_predictions`` prints them (``steam_locomotive``).
"""

from __future__ import annotations

from functools import cache
from importlib import resources


@cache
def imagenet_class_names() -> tuple[str, ...]:
    text = resources.files(__package__).joinpath("imagenet_classes.txt").read_text("utf-8")
    names = tuple(line for line in text.splitlines() if line)
    if len(names) != 1000:
        raise RuntimeError(f"imagenet_classes.txt must list 1000 names, it lists {len(names)}")
    return names
