"""The videos of an extraction run and the feature file each one gets, named after its relative path."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ..data.lists import find_videos
from ..errors import UsageError

__all__ = ["FORMATS", "VideoJob", "collect_videos", "assign_outputs", "check_format"]

FORMATS = ("npy", "safetensors")


@dataclass
class VideoJob:
    """A video of the run: ``index`` (input order), ``path`` (to open), ``rel`` (its relative path, as listed),
    ``output`` (its features file, relative to the output directory)."""

    index: int
    path: str
    rel: str
    output: str = ""

    @property
    def sidecar(self) -> str:
        """The windows table beside the features file."""
        return str(Path(self.output).with_suffix("")) + ".windows.csv"


def check_format(fmt: str) -> None:
    """``fmt`` is one of :data:`FORMATS`, else a :class:`UsageError` listing them."""
    if fmt not in FORMATS:
        raise UsageError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")


def _safe_rel(rel: str) -> str:
    """A relative path that stays inside the output directory (absolute paths and ``..`` parts are stripped)."""
    parts = [p for p in Path(rel).parts if p not in ("", ".", "..") and p != Path(rel).anchor]
    return str(Path(*parts)) if parts else "video"


def collect_videos(
    inputs: Sequence[str] = (), *, ann_file: str | os.PathLike | None = None, data_root: str | os.PathLike = ""
) -> list[VideoJob]:
    """The videos of a run and their relative paths (:func:`uniformerv2.data.find_videos`): an annotation list
    (paths as listed, relative to ``data_root``), or files (their name), folders (paths below the folder) and globs
    (paths below the glob's fixed part). Folders and globs that hold no video are kept as they are (the run reports
    them)."""
    if bool(ann_file) == bool(inputs):
        raise UsageError("give the videos as VIDEO/DIR arguments or as --ann-file FILE [--data-root DIR]")
    found = find_videos(inputs, ann_file=ann_file, data_root=data_root)
    return [VideoJob(i, v.path, _safe_rel(v.rel)) for i, v in enumerate(found)]


def assign_outputs(jobs: Sequence[VideoJob], fmt: str) -> list[VideoJob]:
    """Name every job's features file: its relative path with the extension replaced by ``.npy`` /
    ``.safetensors``; videos that would share a name keep their extension (``a.mp4.npy``, ``a.avi.npy``). The same
    video listed twice is an error."""
    check_format(fmt)
    seen: dict[str, str] = {}
    for job in jobs:
        if job.rel in seen:
            what = (
                "is listed twice"
                if os.path.abspath(seen[job.rel]) == os.path.abspath(job.path)
                else f"is the relative path of two videos ({seen[job.rel]} and {job.path})"
            )
            raise UsageError(
                f"{job.rel} {what}: each video's features go to one file named after its relative "
                "path; give a folder or an --ann-file whose paths tell the videos apart"
            )
        seen[job.rel] = job.path
    stems: dict[str, int] = {}
    for job in jobs:
        stem = str(Path(job.rel).with_suffix(""))
        stems[stem] = stems.get(stem, 0) + 1
    for job in jobs:
        stem = str(Path(job.rel).with_suffix(""))
        job.output = (job.rel if stems[stem] > 1 else stem) + "." + fmt
    return list(jobs)
