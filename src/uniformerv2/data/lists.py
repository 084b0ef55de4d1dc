"""Video lists: MMAction2 annotation files, folders of class sub-folders, and command-line inputs."""

from __future__ import annotations

import glob
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple, Union

from ..errors import AnnotationError

__all__ = [
    "VIDEO_EXTENSIONS",
    "VideoSample",
    "InputVideo",
    "MalformedLine",
    "read_list_text",
    "parse_annotation_list",
    "read_annotation_list",
    "scan_class_folders",
    "find_videos",
    "expand_inputs",
]

PathLike = Union[str, "os.PathLike[str]"]

VIDEO_EXTENSIONS = (
    ".mp4",
    ".avi",
    ".mkv",
    ".webm",
    ".mov",
    ".m4v",
    ".mpg",
    ".mpeg",
    ".wmv",
    ".flv",
    ".3gp",
    ".ts",
    ".ogv",
)


@dataclass
class VideoSample:
    """One video of a list: its path, integer label (``None`` when the list has no labels) and line number."""

    path: str
    label: int | None = None
    line: int | None = field(default=None, compare=False)  # in its annotation list, for error messages


def read_list_text(ann_file: PathLike) -> str:
    """The text of an annotation list; a missing or binary file is an :class:`AnnotationError` naming it."""
    ann = Path(ann_file)
    if not ann.is_file():
        raise AnnotationError(f"{ann_file}: no such annotation file")
    try:
        return ann.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise AnnotationError(f"{ann_file}: not a text file ({e.reason} at byte {e.start})") from e


class MalformedLine(NamedTuple):
    """A line of an annotation list that cannot be read: its number, first field and why."""

    line: int
    first_field: str
    reason: str


def parse_annotation_list(
    ann_file: PathLike, data_root: PathLike = ""
) -> tuple[list[VideoSample], list[MalformedLine]]:
    """Every entry of an MMAction2 video list and every malformed line, without raising for the latter (what
    :func:`read_annotation_list` reads, and what ``uniformerv2 check`` reports line by line)."""
    text = read_list_text(ann_file)
    samples: list[VideoSample] = []
    malformed: list[MalformedLine] = []
    for lineno, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        fields = stripped.split()
        if len(fields) > 2:
            malformed.append(
                MalformedLine(lineno, fields[0], f"expected 'path [label]', got {len(fields)} fields: {stripped!r}")
            )
            continue
        label = None
        if len(fields) == 2:
            try:
                label = int(fields[1])
            except ValueError:
                malformed.append(MalformedLine(lineno, fields[0], f"label {fields[1]!r} is not an integer"))
                continue
            if label < 0:
                malformed.append(MalformedLine(lineno, fields[0], f"label {label} is negative"))
                continue
        path = os.path.join(str(data_root), fields[0]) if str(data_root) else fields[0]
        samples.append(VideoSample(path=path, label=label, line=lineno))
    return samples, malformed


def read_annotation_list(ann_file: PathLike, data_root: PathLike = "") -> list[VideoSample]:
    """Read an MMAction2 video list: one ``relative/path.mp4 label`` per line, the label optional.

    Paths are joined to ``data_root`` (as MMAction2's ``data_prefix=dict(video=...)``); blank lines and lines
    starting with ``#`` are skipped. Paths may not contain whitespace (as in MMAction2). Malformed lines raise one
    :class:`AnnotationError` that names the file and every bad line.
    """
    samples, malformed = parse_annotation_list(ann_file, data_root)
    problems = [f"{ann_file}:{m.line}: {m.reason}" for m in malformed]
    if len(problems) == 1:
        raise AnnotationError(problems[0])
    if problems:  # every bad line at once, so one edit fixes the list
        shown = "\n".join(f"  {p}" for p in problems[:50])
        more = f"\n  ... and {len(problems) - 50} more" if len(problems) > 50 else ""
        raise AnnotationError(f"{ann_file}: {len(problems)} malformed lines:\n{shown}{more}")
    if not samples:
        raise AnnotationError(f"{ann_file}: no videos listed")
    return samples


def scan_class_folders(root: PathLike) -> tuple[list[VideoSample], list[str]]:
    """A folder-per-class layout ``root/<class>/**/<video>``: samples and class names (sorted; label = position).

    Video files are recognised by extension (``VIDEO_EXTENSIONS``, case-insensitive); hidden files and folders
    are ignored; samples are sorted by class, then path.
    """
    base = Path(root)
    if not base.is_dir():
        raise AnnotationError(f"{root}: not a directory")
    classes = sorted(d.name for d in base.iterdir() if d.is_dir() and not d.name.startswith("."))
    if not classes:
        raise AnnotationError(f"{root}: no class folders (expected {root}/<class name>/<video files>)")
    samples: list[VideoSample] = []
    for label, name in enumerate(classes):
        files = sorted(
            p
            for p in (base / name).rglob("*")
            if p.is_file()
            and p.suffix.lower() in VIDEO_EXTENSIONS
            and not any(part.startswith(".") for part in p.relative_to(base).parts)
        )
        samples.extend(VideoSample(path=str(p), label=label) for p in files)
    if not samples:
        raise AnnotationError(f"{root}: no video files in its class folders")
    return samples, classes


@dataclass(frozen=True)
class InputVideo:
    """A video named on the command line or in a list: ``path`` (to open) and ``rel``, its path relative to what
    named it (the folder, the glob's fixed part, the list's ``data_root``; a file's own name)."""

    path: str
    rel: str


def _has_wildcard(text: str) -> bool:
    return any(ch in text for ch in "*?[")


def _is_glob(item: str) -> bool:
    """A pattern, not a file whose name happens to hold ``*?[``."""
    return _has_wildcard(item) and not os.path.exists(item)


def _glob_base(pattern: str) -> str:
    """The fixed part of a glob: the folders before its first wildcard part."""
    fixed = []
    for part in Path(pattern).parts:
        if _has_wildcard(part):
            break
        fixed.append(part)
    return str(Path(*fixed)) if fixed else "."


def find_videos(
    inputs: Iterable[str] = (), *, ann_file: PathLike | None = None, data_root: PathLike = ""
) -> list[InputVideo]:
    """The videos that inputs name, in order: an annotation list's videos (its paths joined to ``data_root``, see
    :func:`read_annotation_list`), then for each input a file as given, a folder's video files (by extension,
    searched recursively, sorted) or a glob's matches (sorted; ``**`` recurses).

    A folder without videos and a glob matching nothing are kept as they are (the caller reports them as bad
    inputs, one per video, rather than dropping them unseen).
    """
    found: list[InputVideo] = []
    if ann_file:
        root = str(data_root or "")
        for sample in read_annotation_list(ann_file, root):
            found.append(InputVideo(sample.path, os.path.relpath(sample.path, root) if root else sample.path))
    for item in inputs:
        if os.path.isdir(item):
            files = sorted(str(p) for p in Path(item).rglob("*") if p.suffix.lower() in VIDEO_EXTENSIONS)
            found += [InputVideo(f, os.path.relpath(f, item)) for f in files] or [InputVideo(item, item)]
        elif _is_glob(item):
            base = _glob_base(item)
            matches = sorted(glob.glob(item, recursive=True))
            found += [InputVideo(f, os.path.relpath(f, base)) for f in matches] or [
                InputVideo(item, os.path.basename(item))
            ]
        else:
            found.append(InputVideo(item, os.path.basename(os.path.normpath(item))))
    return found


def expand_inputs(items: Iterable[str]) -> list[str]:
    """Files as given; directories and globs expanded to the video files they hold (sorted): the paths of
    :func:`find_videos`."""
    return [v.path for v in find_videos(items)]
