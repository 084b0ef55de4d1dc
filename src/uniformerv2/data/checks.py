"""Checks of a video list before a long run: missing files, labels out of range or absent, undecodable videos."""
from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from ..errors import AnnotationError, VideoDecodeError
from .decode import open_video

__all__ = ["SampleProblem", "BadSamplesError", "check_samples"]


@dataclass
class SampleProblem:
    """One thing wrong with entry ``index`` of a list: ``kind`` is missing, label or decode."""

    index: int
    path: str
    kind: str
    detail: str

    def __str__(self) -> str:
        return f"{self.path}: {self.detail}"


class BadSamplesError(AnnotationError):
    """Entries of a list that cannot be used; ``problems`` lists them all."""

    def __init__(self, source: str, problems: list[SampleProblem], report: Path | None = None,
                 max_lines: int = 20) -> None:
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


def _probe(path: str, backend: str) -> str | None:
    try:
        with open_video(path, backend) as reader:
            if reader.num_frames < 1:
                return "no frames"
            reader.read([0])
    except VideoDecodeError as e:
        return f"cannot be decoded ({e.reason})"
    except ImportError:
        raise
    except Exception as e:  # noqa: BLE001 - any decoder failure is the video's problem
        return f"cannot be decoded ({type(e).__name__}: {e})"
    return None


def check_samples(samples: Sequence[Any], num_classes: int | None, *, decode: bool = True, backend: str = "pyav",
                  workers: int = 4, indices: Sequence[int] | None = None) -> list[SampleProblem]:
    """Every problem of the entries ``indices`` (default: all) of a list, in list order: missing files, labels
    out of ``[0, num_classes)`` or absent, undecodable videos (with ``decode``: the header read and the first
    frame decoded)."""
    def check(i: int) -> list[SampleProblem]:
        s = samples[i]
        out = []
        if s.label is None:
            out.append(SampleProblem(i, s.path, "label", "no label"))
        elif num_classes is not None and not 0 <= int(s.label) < num_classes:
            out.append(SampleProblem(i, s.path, "label", f"label {s.label} out of range [0, {num_classes})"))
        if not os.path.isfile(s.path):
            out.append(SampleProblem(i, s.path, "missing", "no such file"))
        elif decode:
            reason = _probe(s.path, backend)
            if reason:
                out.append(SampleProblem(i, s.path, "decode", reason))
        return out

    problems: list[SampleProblem] = []
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        for found in pool.map(check, range(len(samples)) if indices is None else indices):
            problems.extend(found)
    return sorted(problems, key=lambda p: p.index)
