"""Class names: label-map files, one name per line, and the maps shipped with the package."""
from __future__ import annotations

import os
from importlib import resources
from pathlib import Path
from typing import Union

from ..errors import AnnotationError

__all__ = ["SHIPPED_LABEL_MAPS", "read_label_map"]

PathLike = Union[str, "os.PathLike[str]"]

SHIPPED_LABEL_MAPS = ("k400", "k600", "k700", "k710", "mitv1")


def read_label_map(path_or_name: PathLike) -> list[str]:
    """Class names, one per line: a text file, or a shipped map 'k400', 'k600', 'k700', 'k710', 'mitv1'."""
    p = Path(path_or_name)
    if p.is_file():
        try:
            text = p.read_text(encoding="utf-8")
        except UnicodeDecodeError as e:
            raise AnnotationError(f"{path_or_name}: not a text file ({e.reason} at byte {e.start})") from e
        source = str(path_or_name)
    elif str(path_or_name) in SHIPPED_LABEL_MAPS:
        text = resources.files("uniformerv2").joinpath(f"labels/label_map_{path_or_name}.txt").read_text("utf-8")
        source = f"label map {path_or_name!r}"
    else:
        raise AnnotationError(f"{path_or_name}: no such label map file, and not one of the shipped label maps "
                              f"({', '.join(SHIPPED_LABEL_MAPS)})")
    names = [line.strip() for line in text.splitlines()]
    while names and not names[-1]:
        names.pop()
    for lineno, name in enumerate(names, start=1):
        if not name:
            raise AnnotationError(f"{source}:{lineno}: empty class name")
    if not names:
        raise AnnotationError(f"{source}: no class names")
    return names
