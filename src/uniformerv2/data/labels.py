"""Class names: label-map files, one name per line, the maps shipped with the package, and matching a user's list
against a model's classes by name."""

from __future__ import annotations

import difflib
import json
import os
import re
from collections.abc import Mapping, Sequence
from importlib import resources
from pathlib import Path
from typing import Any, Union

from ..errors import AnnotationError

__all__ = [
    "SHIPPED_LABEL_MAPS",
    "read_label_map",
    "shipped_label_map",
    "describe_matches",
    "match_class_names",
    "class_rows",
    "kinetics710_aliases",
    "head_aliases",
]

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
        return _names(text, str(path_or_name))
    if str(path_or_name) in SHIPPED_LABEL_MAPS:
        return shipped_label_map(str(path_or_name))
    raise AnnotationError(
        f"{path_or_name}: no such label map file, and not one of the shipped label maps "
        f"({', '.join(SHIPPED_LABEL_MAPS)})"
    )


def shipped_label_map(name: str) -> list[str]:
    """The class names of a label map shipped with the package ('k400', 'k600', 'k700', 'k710', 'mitv1'), never a
    file's: what a client of a server may name."""
    if name not in SHIPPED_LABEL_MAPS:
        raise AnnotationError(f"{name!r} is not one of the shipped label maps ({', '.join(SHIPPED_LABEL_MAPS)})")
    text = resources.files("uniformerv2").joinpath(f"labels/label_map_{name}.txt").read_text("utf-8")
    return _names(text, f"label map {name!r}")


def _names(text: str, source: str) -> list[str]:
    """The class names of a label map's text, one per line (trailing blank lines ignored)."""
    names = [line.strip() for line in text.splitlines()]
    while names and not names[-1]:
        names.pop()
    for lineno, name in enumerate(names, start=1):
        if not name:
            raise AnnotationError(f"{source}:{lineno}: empty class name")
    if not names:
        raise AnnotationError(f"{source}: no class names")
    return names


def _key(name: str) -> str:
    """A class name without case, spaces or punctuation: 'Tying tie' and 'tying_tie' match."""
    return re.sub(r"[^0-9a-z]+", "", name.casefold())


def _words(name: str) -> str:
    return " ".join(re.sub(r"[^0-9a-z]+", " ", name.casefold()).split())


def kinetics710_aliases() -> dict[str, int]:
    """Kinetics-400/600/700 names -> their row of the Kinetics-710 head, by MMAction2's channel maps (which also
    cover the classes Kinetics-710 renamed, such as 'dying hair' -> 'dyeing hair')."""
    aliases: dict[str, int] = {}
    for dataset in ("k400", "k600", "k700"):
        rows = json.loads(resources.files("uniformerv2").joinpath(f"labels/channel_map_{dataset}.json").read_text())
        for name, row in zip(read_label_map(dataset), rows):
            aliases.setdefault(name, int(row))
    return aliases


def head_aliases(num_classes: int) -> dict[str, int] | None:
    """Other datasets' names for a head's classes: a Kinetics-710 head's (MMAction2's channel maps), else None.
    The one rule ``--labels``, ``check`` and the service use to find a class by another dataset's name."""
    return kinetics710_aliases() if num_classes == 710 else None


def describe_matches(
    wanted: Sequence[str], names: Sequence[str], *, aliases: Mapping[str, int] | None = None
) -> list[dict[str, Any]]:
    """Each wanted name against ``names``: ``match`` 'exact', 'alias' (another list's name for the class, such as the
    Kinetics-710 channel maps), 'loose' (case and punctuation ignored) or None with ``suggestions`` (the closest of
    ``names``); ``index`` is the position matched."""
    exact = {n: i for i, n in enumerate(names)}
    loose: dict[str, int] = {}
    by_words: dict[str, str] = {}
    for i, n in enumerate(names):
        loose.setdefault(_key(n), i)
        by_words.setdefault(_words(n), n)
    out = []
    for name in wanted:
        if name in exact:
            out.append({"name": name, "match": "exact", "index": exact[name], "class_name": name})
        elif aliases and name in aliases and aliases[name] < len(names):
            i = aliases[name]
            out.append({"name": name, "match": "alias", "index": i, "class_name": names[i]})
        elif _key(name) in loose:
            i = loose[_key(name)]
            out.append({"name": name, "match": "loose", "index": i, "class_name": names[i]})
        else:
            close = difflib.get_close_matches(_words(name), list(by_words), n=3, cutoff=0.5)
            out.append({"name": name, "match": None, "index": None, "suggestions": [by_words[c] for c in close]})
    return out


def match_class_names(
    wanted: Sequence[str], names: Sequence[str], *, source: str = "--labels", aliases: Mapping[str, int] | None = None
) -> list[int]:
    """For each wanted class name, its index in ``names`` (see :func:`describe_matches`). Names that match nothing
    are one :class:`AnnotationError` listing each with the closest of ``names``."""
    found = describe_matches(wanted, names, aliases=aliases)
    unknown = [m for m in found if m["index"] is None]
    if unknown:
        hints = [
            f"{m['name']!r} (closest: {', '.join(repr(c) for c in m['suggestions'])})"
            if m["suggestions"]
            else repr(m["name"])
            for m in unknown[:10]
        ]
        more = f" and {len(unknown) - 10} more" if len(unknown) > 10 else ""
        raise AnnotationError(
            f"{source}: {len(unknown)} of {len(wanted)} class names are not classes of the model: "
            f"{'; '.join(hints)}{more}"
        )
    rows = [m["index"] for m in found]
    dup = sorted({names[r] for r in rows if rows.count(r) > 1})
    if dup:
        raise AnnotationError(f"{source}: several names mean the same class of the model: {', '.join(dup[:5])}")
    return rows


def class_rows(wanted: Sequence[str], names: Sequence[str], *, source: str = "--labels") -> list[int]:
    """:func:`match_class_names` of a model's classes ``names``, through the Kinetics-710 channel maps (other
    datasets' names for its classes) when the model has 710 classes: how ``--labels`` picks a model's head rows."""
    return match_class_names(wanted, names, source=source, aliases=head_aliases(len(names)))
