"""What a dataset check finds: the one list of problem kinds (``check`` and ``train``), findings and reports."""

from __future__ import annotations

import collections
import dataclasses
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Union

import numpy as np

from .._version import __version__
from ..data.lists import VideoSample
from ..errors import AnnotationError
from ..protocol import Protocol

__all__ = [
    "DEFAULT_PROTOCOL",
    "PROBLEM_KINDS",
    "WARNING_KINDS",
    "DUPLICATE_KINDS",
    "Split",
    "VideoInfo",
    "Finding",
    "CheckReport",
    "SampleProblem",
    "BadSamplesError",
    "label_problem",
    "file_key",
]

PathLike = Union[str, "os.PathLike[str]"]

DEFAULT_PROTOCOL = Protocol(8, 224, 4, 3)

# kind -> what it means; a problem makes `uniformerv2 check` exit 1 (and `train` stop), a warning does not
PROBLEM_KINDS = {
    "missing": "no such file",
    "empty": "an empty file (0 bytes)",
    "not-a-video": "a text file, not a video",
    "unreadable": "not a video FFmpeg can open (corrupt, or not a video format)",
    "truncated": "the file was cut short (a download or copy that did not finish)",
    "no-video-stream": "a media file without a video stream (audio only, ...)",
    "no-frames": "a video stream without frames",
    "decode-error": "opens, but the frames the test protocol samples cannot be decoded",
    "timeout": "the decoder or the file system hung on it; given up after --timeout",
    "crash": "the decoder crashed on it (the worker process died)",
    "malformed-line": "a line of an annotation list that cannot be read",
    "no-label": "an unlabelled entry in a labelled list (or in a training list)",
    "label-out-of-range": "a label outside [0, number of classes)",
    "duplicate": "the same bytes as an earlier entry of the same list (or the same file listed twice)",
    "near-duplicate": "the same content as an earlier entry of the same list: re-encoded, resized or trimmed",
    "leakage": "a video of this list (or a copy of it) is also in a later list, e.g. a training video in val",
    "empty-class": "a class with no usable video in a list",
    "unknown-class": "a class folder (or --labels name) that matches none of the class names (the model's)",
}
WARNING_KINDS = {
    "few-frames": "fewer frames than a clip takes: the test protocol repeats frames",
    "blank": "every sampled frame is a uniform colour (black, ...)",
    "small-class": "a class with fewer videos than --min-per-class",
    "imbalance": "the largest class has many times the videos of the smallest",
    "loose-class-match": "a name matches a class name only when case and punctuation are ignored",
    "classes-without-folder": "classes of the model with no class folder",
}
# entries dropped from a cleaned list: every problem of an entry, the duplicate kinds only with drop_duplicates
DUPLICATE_KINDS = ("duplicate", "near-duplicate", "leakage")


def file_key(path: str) -> str:
    """One key per file however a list spells it (``a//b.mp4``, ``./b.mp4``)."""
    return os.path.normpath(path)


def label_problem(label: int | None, num_classes: int | None) -> tuple[str, str] | None:
    """(kind, detail) of a label a training list cannot use: none, or outside ``[0, num_classes)``; else None."""
    if label is None:
        return "no-label", "no label"
    if num_classes is not None and not 0 <= int(label) < num_classes:
        return "label-out-of-range", f"label {label} out of range [0, {num_classes})"
    return None


@dataclass
class Split:
    """One list of videos: ``name`` ('train', 'val'), where it comes from, its samples and what loading found."""

    name: str
    source: str
    samples: list[VideoSample]
    kind: str = "list"  # 'list' (an annotation file) or 'folder' (class sub-folders)
    data_root: str = ""
    folder_names: list[str] | None = None  # class folders, sorted
    folder_labels: list[int | None] | None = None  # each folder's label (None: matches no class name)
    findings: list[Finding] = field(default_factory=list)  # malformed lines, unknown class folders


@dataclass
class VideoInfo:
    """What inspecting one file found: its properties, or ``kind``/``error`` when it is unusable."""

    path: str
    size: int | None = None
    sha256: str | None = None
    frames: int | None = None
    fps: float | None = None
    duration: float | None = None
    width: int | None = None  # as displayed (after the rotation)
    height: int | None = None
    coded_width: int | None = None
    coded_height: int | None = None
    codec: str | None = None
    rotation: int | None = None  # counterclockwise degrees the frames are turned to be shown upright
    kind: str | None = None  # a PROBLEM_KINDS key when the file cannot be used
    error: str | None = None
    warnings: list[tuple[str, str]] = field(default_factory=list)
    seconds: float = 0.0
    hashes: np.ndarray | None = None  # uint64 [frames, 4]: the non-uniform sampled frames, in time order
    key: int | None = None  # 64-bit hash of the mean frame

    @property
    def ok(self) -> bool:
        return self.kind is None

    def to_dict(self) -> dict[str, Any]:
        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name not in ("hashes", "key")}
        d["warnings"] = [{"kind": k, "detail": v} for k, v in self.warnings]
        d["duration"] = None if self.duration is None else round(self.duration, 4)
        d["fps"] = None if self.fps is None else round(self.fps, 4)
        d["seconds"] = round(self.seconds, 4)
        return d


@dataclass
class Finding:
    """A problem (``level='problem'``, exit status 1) or a warning: what, where, and what it relates to."""

    kind: str
    detail: str
    level: str = "problem"
    split: str | None = None
    path: str | None = None
    line: int | None = None
    label: int | None = None
    related: list[str] = field(default_factory=list)
    entry: int | None = None  # index of the sample in its split (not in the JSON)

    def where(self) -> str:
        place = self.path or ""
        if self.split:
            place = f"{self.split}" + (f":{self.line}" if self.line else "") + (f" {place}" if place else "")
        return place

    def to_dict(self) -> dict[str, Any]:
        d = {k: getattr(self, k) for k in ("kind", "level", "split", "path", "line", "label", "detail", "related")}
        return {k: v for k, v in d.items() if v not in (None, [])}


@dataclass
class CheckReport:
    """Everything :func:`~uniformerv2.check.check_dataset` found; ``ok`` when there is no problem (warnings
    allowed). :func:`~uniformerv2.check.run` also records the files it wrote."""

    protocol: Protocol
    splits: list[Split]
    videos: dict[str, VideoInfo]
    problems: list[Finding]
    warnings: list[Finding]
    num_classes: int | None
    num_classes_source: str | None
    class_names: list[str] | None
    class_counts: dict[str, list[int]]
    name_matches: list[dict[str, Any]]
    exact_groups: list[list[str]]
    near_pairs: list[dict[str, Any]]
    seconds: float
    workers: int
    timeout: float
    written: list[Path] = field(default_factory=list)  # check.json, check.md, then the PNGs
    clean_lists: list[tuple[Path, int, int]] = field(default_factory=list)  # (path, entries kept, dropped)

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def exit_status(self) -> int:
        return 0 if self.ok else 1

    def counts(self, findings: Iterable[Finding]) -> dict[str, int]:
        return dict(collections.Counter(f.kind for f in findings).most_common())

    def flagged_entries(self, split: Split) -> set[int]:
        """Indices of the entries of ``split`` with a problem."""
        return {f.entry for f in self.problems if f.split == split.name and f.entry is not None}

    def to_dict(self) -> dict[str, Any]:
        """The JSON report (``check.json``)."""
        splits = [
            {
                "name": s.name,
                "source": s.source,
                "kind": s.kind,
                "data_root": s.data_root,
                "entries": len(s.samples),
                "entries_with_problems": len(self.flagged_entries(s)),
                "classes": self.class_counts.get(s.name),
            }
            for s in self.splits
        ]
        return {
            "uniformerv2_check": 1,
            "uniformerv2": __version__,
            "ok": self.ok,
            "exit_status": self.exit_status,
            "protocol": self.protocol.to_dict(),
            "seconds": round(self.seconds, 3),
            "workers": self.workers,
            "timeout_s": self.timeout,
            "summary": {
                "videos": len(self.videos),
                "usable_videos": sum(v.ok for v in self.videos.values()),
                "problems": self.counts(self.problems),
                "warnings": self.counts(self.warnings),
            },
            "classes": {
                "num_classes": self.num_classes,
                "source": self.num_classes_source,
                "names": self.class_names,
                "name_matches": self.name_matches,
            },
            "splits": splits,
            "problems": [f.to_dict() for f in self.problems],
            "warnings": [f.to_dict() for f in self.warnings],
            "duplicates": {"exact_groups": self.exact_groups, "near_pairs": self.near_pairs},
            "entries": {
                s.name: [{"line": x.line, "path": x.path, "label": x.label} for x in s.samples] for s in self.splits
            },
            "videos": [v.to_dict() for v in self.videos.values()],
        }


@dataclass
class SampleProblem:
    """One thing wrong with entry ``index`` of a training list; ``kind`` is a :data:`PROBLEM_KINDS` key."""

    index: int
    path: str
    kind: str
    detail: str

    def __str__(self) -> str:
        return f"{self.path}: {self.detail}"


class BadSamplesError(AnnotationError):
    """Entries of a list that cannot be used; ``problems`` lists them all."""

    def __init__(
        self, source: str, problems: list[SampleProblem], report: Path | None = None, max_lines: int = 20
    ) -> None:
        self.problems = problems
        counts: dict[str, int] = {}
        for p in problems:
            counts[p.kind] = counts.get(p.kind, 0) + 1
        summary = ", ".join(f"{n} {k}" for k, n in counts.items())
        lines = [f"{source}: {len(problems)} bad entries ({summary}); fix them or pass --skip-bad-samples:"]
        lines += [f"  {p}" for p in problems[:max_lines]]
        if len(problems) > max_lines:
            lines.append(f"  ... and {len(problems) - max_lines} more" + (f" (all in {report})" if report else ""))
        super().__init__("\n".join(lines))

    def __reduce__(self):
        return (Exception.__new__, (type(self),), self.__dict__)
