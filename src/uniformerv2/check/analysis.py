"""The analysis of a check: files, labels, classes, duplicates and leakage across lists (``check``), and the
problems of a training list before a run (``train``)."""

from __future__ import annotations

import collections
import os
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from ..data.lists import VideoSample
from ..errors import UsageError
from ..protocol import Protocol
from .hashing import NEAR_THRESHOLD, near_pairs
from .probe import decode_problem, inspect_videos
from .records import (
    DEFAULT_PROTOCOL,
    PROBLEM_KINDS,
    CheckReport,
    Finding,
    SampleProblem,
    Split,
    VideoInfo,
    file_key,
    label_problem,
)

__all__ = ["check_dataset", "check_samples"]


def check_dataset(
    splits: Sequence[Split],
    *,
    protocol: Protocol = DEFAULT_PROTOCOL,
    num_classes: int | None = None,
    num_classes_source: str | None = None,
    class_names: Sequence[str] | None = None,
    name_matches: Sequence[dict[str, Any]] = (),
    findings: Sequence[Finding] = (),
    workers: int | None = None,
    timeout: float = 60.0,
    min_per_class: int = 5,
    progress: bool = True,
) -> CheckReport:
    """Check every video of ``splits`` (the first is the training list; leakage is reported on the earlier list's
    entry) and their labels; ``num_classes`` defaults to the class names', else the largest label + 1."""
    t0 = time.perf_counter()
    if not splits:
        raise UsageError("no lists to check")
    names = [s.name for s in splits]
    if len(set(names)) != len(names):
        raise UsageError(f"list names must differ, got {names}")
    workers = workers if workers is not None else min(8, os.cpu_count() or 1)
    paths = [file_key(s.path) for split in splits for s in split.samples]
    videos = inspect_videos(paths, protocol, workers=workers, timeout=timeout, progress=progress) if paths else {}
    found = _Findings(
        [f for s in splits for f in s.findings] + [f for f in findings if f.level == "problem"],
        [f for f in findings if f.level == "warning"],
    )
    _file_findings(splits, videos, found)
    num_classes, num_classes_source, class_counts = _label_findings(
        splits, videos, found, num_classes, num_classes_source, class_names, min_per_class
    )
    exact_groups, pairs = _duplicate_findings(splits, videos, found)
    order = {k: n for n, k in enumerate(PROBLEM_KINDS)}
    split_order = {s.name: n for n, s in enumerate(splits)}
    found.problems.sort(key=lambda f: (split_order.get(f.split or "", -1), f.line or 0, order.get(f.kind, 99)))
    return CheckReport(
        protocol=protocol,
        splits=list(splits),
        videos=videos,
        problems=found.problems,
        warnings=found.warnings,
        num_classes=num_classes,
        num_classes_source=num_classes_source,
        class_names=None if class_names is None else list(class_names),
        class_counts=class_counts,
        name_matches=list(name_matches),
        exact_groups=exact_groups,
        near_pairs=pairs,
        seconds=time.perf_counter() - t0,
        workers=workers,
        timeout=timeout,
    )


@dataclass
class _Findings:
    """The problems and warnings found so far, in the order found."""

    problems: list[Finding]
    warnings: list[Finding]

    def add(
        self, kind: str, detail: str, split: Split, i: int, related: Sequence[str] = (), level: str = "problem"
    ) -> None:
        """A finding about entry ``i`` of ``split``."""
        s = split.samples[i]
        (self.problems if level == "problem" else self.warnings).append(
            Finding(
                kind,
                detail,
                level=level,
                split=split.name,
                path=s.path,
                line=s.line,
                label=s.label,
                related=list(related),
                entry=i,
            )
        )


def _file_findings(splits: Sequence[Split], videos: dict[str, VideoInfo], found: _Findings) -> None:
    """The unusable files, and the warnings about usable ones."""
    for split in splits:
        for i, s in enumerate(split.samples):
            v = videos[file_key(s.path)]
            if not v.ok:
                found.add(v.kind or "decode-error", v.error or "", split, i)
            for kind, detail in v.warnings:
                found.add(kind, detail, split, i, level="warning")


def _label_findings(
    splits: Sequence[Split],
    videos: dict[str, VideoInfo],
    found: _Findings,
    num_classes: int | None,
    num_classes_source: str | None,
    class_names: Sequence[str] | None,
    min_per_class: int,
) -> tuple[int | None, str | None, dict[str, list[int]]]:
    """Labels missing or out of range, empty, small and unbalanced classes. Returns the number of classes (given,
    the class names', else the largest label + 1), where it comes from, and each list's usable videos per class."""
    labelled = [s.label for split in splits for s in split.samples if s.label is not None]
    if num_classes is None and class_names is not None:
        num_classes, num_classes_source = len(class_names), num_classes_source or "the class names"
    if num_classes is None and labelled:
        num_classes, num_classes_source = max(labelled) + 1, "inferred: the largest label + 1"
    class_counts: dict[str, list[int]] = {}
    for split in splits:
        unlabelled = [i for i, s in enumerate(split.samples) if s.label is None]
        if split.kind == "list" and unlabelled and len(unlabelled) < len(split.samples):
            for i in unlabelled:
                found.add("no-label", "no label, in a list whose other entries have one", split, i)
        if num_classes is None:
            continue
        counts = [0] * num_classes
        for i, s in enumerate(split.samples):
            if s.label is None:
                continue
            bad_label = label_problem(s.label, num_classes)
            if bad_label:
                found.add(bad_label[0], f"{bad_label[1]} ({num_classes_source})", split, i)
            elif videos[file_key(s.path)].ok:
                counts[s.label] += 1
        if split.kind == "list" and not any(s.label is not None for s in split.samples):
            continue  # an unlabelled list (videos to predict) has no classes to count
        class_counts[split.name] = counts
        if split.folder_labels is not None:  # a folder's classes are its folders, not every class of a model
            expected = sorted({c for c in split.folder_labels if c is not None and c < num_classes})
        else:
            expected = list(range(num_classes))
        for c in expected:
            what = _class_text(c, class_names)
            if counts[c] == 0:
                found.problems.append(
                    Finding("empty-class", f"class {what} has no usable video", split=split.name, label=c)
                )
            elif counts[c] < min_per_class:
                found.warnings.append(
                    Finding(
                        "small-class",
                        f"class {what} has {counts[c]} usable video"
                        f"{'s' if counts[c] != 1 else ''} (fewer than {min_per_class})",
                        level="warning",
                        split=split.name,
                        label=c,
                    )
                )
        nonzero = [counts[c] for c in expected if counts[c]]
        if len(nonzero) > 1 and max(nonzero) >= 10 * min(nonzero):
            found.warnings.append(
                Finding(
                    "imbalance",
                    f"class sizes range from {min(nonzero)} to {max(nonzero)} "
                    f"videos ({max(nonzero) / min(nonzero):.0f}x)",
                    level="warning",
                    split=split.name,
                )
            )
    return num_classes, num_classes_source, class_counts


def _duplicate_findings(
    splits: Sequence[Split], videos: dict[str, VideoInfo], found: _Findings
) -> tuple[list[list[str]], list[dict[str, Any]]]:
    """Duplicates and near duplicates within a list, leakage into later lists. Returns the groups of files with the
    same bytes and the near-duplicate pairs (for the report)."""
    # one representative file per content (sha256), then near pairs between representatives
    usable = {k: v for k, v in videos.items() if v.ok}
    by_sha: dict[str, list[str]] = collections.defaultdict(list)
    for k, v in usable.items():
        by_sha[v.sha256 or k].append(k)
    shas = list(by_sha)
    reps = [usable[by_sha[h][0]] for h in shas]
    near = near_pairs([v.key for v in reps], [v.hashes for v in reps])
    near_of: dict[str, dict[str, float]] = collections.defaultdict(dict)
    for (i, j), score in near.items():
        near_of[shas[i]][shas[j]] = score
        near_of[shas[j]][shas[i]] = score

    def content(s: VideoSample) -> str | None:
        v = usable.get(file_key(s.path))
        return None if v is None else (v.sha256 or file_key(s.path))

    for split in splits:
        seen: dict[str, int] = {}
        for i, s in enumerate(split.samples):
            h = content(s)
            if h is None:
                continue
            if h in seen:
                first = split.samples[seen[h]]
                how = "the same file, listed again" if file_key(first.path) == file_key(s.path) else "the same bytes"
                found.add("duplicate", f"{how} as {_entry_text(split, first)}", split, i, [first.path])
            else:
                earlier = [(score, seen[g]) for g, score in near_of.get(h, {}).items() if g in seen]
                if earlier:
                    score, j = min(earlier)
                    first = split.samples[j]
                    found.add(
                        "near-duplicate",
                        f"the same content as {_entry_text(split, first)}, score {score:.3f} <= {NEAR_THRESHOLD}",
                        split,
                        i,
                        [first.path],
                    )
                seen[h] = i
    for a, split in enumerate(splits):
        for later in splits[a + 1 :]:
            in_later: dict[str, list[VideoSample]] = collections.defaultdict(list)
            for s in later.samples:
                h = content(s)
                if h is not None:
                    in_later[h].append(s)
            for i, s in enumerate(split.samples):
                h = content(s)
                if h is None:
                    continue
                hits = [(-1.0, x) for x in in_later.get(h, [])]  # the same bytes first
                hits += [(score, x) for g, score in near_of.get(h, {}).items() for x in in_later.get(g, [])]
                if hits:
                    score, x = min(hits, key=lambda t: t[0])
                    same_file = file_key(x.path) == file_key(s.path)
                    how = (
                        ("the same file" if same_file else "the same bytes")
                        if score < 0
                        else f"a near duplicate, score {score:.3f}"
                    )
                    more = f", and {len(hits) - 1} more" if len(hits) > 1 else ""
                    found.add(
                        "leakage",
                        f"also in {later.name}: {_entry_text(later, x)}, {how}{more}",
                        split,
                        i,
                        sorted({y.path for _, y in hits}),
                    )

    exact_groups = [sorted(by_sha[h]) for h in shas if len(by_sha[h]) > 1]
    pairs = [{"a": reps[i].path, "b": reps[j].path, "score": round(score, 4)} for (i, j), score in near.items()]
    return exact_groups, pairs


def _class_text(c: int, class_names: Sequence[str] | None) -> str:
    return f"{c} {class_names[c]!r}" if class_names is not None and c < len(class_names) else str(c)


def _entry_text(split: Split, s: VideoSample) -> str:
    return f"{s.path}" + (f" ({split.name} line {s.line})" if s.line else f" ({split.name})")


def check_samples(
    samples: Sequence[Any],
    num_classes: int | None,
    *,
    decode: bool = True,
    backend: str = "pyav",
    workers: int = 4,
    indices: Sequence[int] | None = None,
) -> list[SampleProblem]:
    """Every problem of the entries ``indices`` (default: all) of a training list, in list order: labels absent or
    out of ``[0, num_classes)``, missing files, and (with ``decode``) files whose header or first frame cannot be
    decoded with ``backend``; kinds are :data:`~uniformerv2.check.PROBLEM_KINDS` keys."""

    def check(i: int) -> list[SampleProblem]:
        s = samples[i]
        out = []
        bad_label = label_problem(s.label, num_classes)
        if bad_label:
            out.append(SampleProblem(i, s.path, *bad_label))
        if not os.path.isfile(s.path):
            out.append(SampleProblem(i, s.path, "missing", "no such file"))
        elif decode:
            bad_file = decode_problem(s.path, backend)
            if bad_file:
                out.append(SampleProblem(i, s.path, *bad_file))
        return out

    problems: list[SampleProblem] = []
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        for found in pool.map(check, range(len(samples)) if indices is None else indices):
            problems.extend(found)
    return sorted(problems, key=lambda p: p.index)
