"""Feature extraction at corpus scale: one feature file per video, a manifest, and resumable runs.

Two modes (:func:`extract`):

* ``mode="video"``: one vector per video, the mean over the protocol's ``clips x crops`` test views of the
  network's feature (``kind``, see :meth:`uniformerv2.model.UniFormerV2.forward_features`). With ``kind="pooled"``
  this is exactly what MMAction2 1.2.0's ``tools/misc/clip_feature_extraction.py`` returns for a UniFormerV2 config
  and checkpoint: that tool keeps the config's test views (``UniformSample`` clips, ``ThreeCrop``), passes the
  backbone's clip feature through ``FeatureHead`` and averages the views (``average_clips='score'``).
* ``mode="windows"``: sliding windows over the whole video (:class:`WindowSpec`, :func:`plan_windows`), each window
  sampled to the model's frame count and seen through ``crops`` crops (their features averaged); one
  ``[num_windows, C]`` array per video, with every window's start and end time.

Layout of ``out_dir``: the features of ``videos/a/b.mp4`` (relative path ``a/b.mp4``) are ``a/b.npy`` (or
``a/b.safetensors``; where two videos differ only by extension, both keep it: ``a/b.mp4.npy``), in windows mode
with ``a/b.windows.csv`` beside them (one row per window: start/end time and frame, sampled frames). Every file is
written atomically. ``manifest.csv`` and ``manifest.json`` list every video of the run with its status (``ok``,
``failed`` with the reason, ``pending``), shape, fps, frame count, duration, window and stride (frames and
seconds), ActionFormer's ``feat_stride`` / ``num_frames`` / ``default_fps``, the model and its checkpoint (name and
sha256). They are rebuilt from the journal ``manifest.log.jsonl`` (one per process under torchrun:
``manifest.log.rank<N>.jsonl``): a line is appended when a video's files are on disk (its size and sha256 with it),
so a killed run loses at most the video in flight. Running the same extraction again skips every video whose files
are recorded there and still match; other settings in the same ``out_dir`` are refused unless ``overwrite``.

Throughput: videos are decoded in ``DataLoader`` workers while the network runs; views (video mode) or windows
(windows mode, read in chunks so a long video never sits in memory whole) of several videos share a forward pass of
at most ``batch_views`` views. Under ``torchrun`` every process takes a disjoint share of the videos still to do.
"""
from __future__ import annotations

import csv
import glob
import hashlib
import io
import json
import math
import os
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import numpy as np
import torch
from torch import nn

from ..atomic import append_line, atomic_write_bytes, atomic_write_file, atomic_write_text
from ..errors import UsageError, VideoDecodeError
from ..model import FEATURE_KINDS
from ..precision import autocast, compile_for_inference, resolve_dtype
from ..protocol import Protocol
from . import distributed as D

__all__ = ["FEATURE_KINDS", "MODES", "FORMATS", "Span", "WindowSpec", "WindowPlan", "VideoJob", "ExtractResult",
           "feature_forward", "plan_windows", "collect_videos", "assign_outputs", "extract", "read_journal",
           "write_manifest", "MANIFEST_FIELDS"]

MODES = ("video", "windows")
FORMATS = ("npy", "safetensors")
LOG_PREFIX = "manifest.log"
MANIFEST_FIELDS = (
    "video", "status", "reason", "output", "num_windows", "feature_dim", "feature_shape", "fps", "frames",
    "duration_s", "window_frames", "stride_frames", "window_s", "stride_s", "feat_stride", "num_frames",
    "default_fps", "clip_frames", "views", "kind", "mode", "model", "checkpoint", "checkpoint_sha256", "path",
    "sha256", "run",
)


# ------------------------------------------------------------------------------------------------ the network

class _Features(nn.Module):
    """``model.forward_features(x, kind)`` as a module's forward, so it can be compiled like the model."""

    def __init__(self, model: nn.Module, kind: str) -> None:
        super().__init__()
        self.model = model
        self.kind = kind

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model.forward_features(x, kind=self.kind)


def feature_forward(model: nn.Module, kind: str = "pooled", *, compile: bool = False) -> Callable[..., torch.Tensor]:
    """A callable ``f(normalised views) -> features`` of ``kind``, compiled with
    :func:`~uniformerv2.precision.compile_for_inference` when ``compile``."""
    if kind not in FEATURE_KINDS:
        raise UsageError(f"unknown feature kind {kind!r}; choose one of {', '.join(FEATURE_KINDS)}")
    module = _Features(model, kind).eval()
    return compile_for_inference(module) if compile else module


# -------------------------------------------------------------------------------------------------- windows

@dataclass(frozen=True)
class Span:
    """A length in frames (``16``) or seconds (``2s``, ``0.5s``)."""

    value: float
    seconds: bool = False

    @classmethod
    def parse(cls, text: str | int | float | "Span") -> "Span":
        if isinstance(text, Span):
            return text
        raw = str(text).strip()
        is_s = raw.lower().endswith("s")
        try:
            value = float(raw[:-1] if is_s else raw)
        except ValueError:
            raise UsageError(f"{text!r}: expected frames (16) or seconds (2s)") from None
        if not math.isfinite(value) or value <= 0:
            raise UsageError(f"{text!r}: must be positive")
        if not is_s and value != int(value):
            raise UsageError(f"{text!r}: a length in frames is a whole number (write seconds with an s: {raw}s)")
        return cls(value, is_s)

    def frames_at(self, fps: float) -> int:
        """This length in whole frames at ``fps`` (seconds are rounded, at least one frame)."""
        return max(1, int(round(self.value * fps))) if self.seconds else int(self.value)

    def __str__(self) -> str:
        return f"{self.value:g}s" if self.seconds else str(int(self.value))


@dataclass(frozen=True)
class WindowSpec:
    """Sliding windows: ``window`` and ``stride`` (:class:`Span`), ``fps`` (resample time first: the frame grid is
    ``k / fps`` seconds, frame ``k`` being the video frame shown then), ``crops`` (1: centre, 3: three crops,
    averaged), ``cover_end`` (add a last window that ends with the video, off the stride grid)."""

    window: Span = Span(16)
    stride: Span = Span(4)
    fps: float | None = None
    crops: int = 1
    cover_end: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "window", Span.parse(self.window))
        object.__setattr__(self, "stride", Span.parse(self.stride))
        if self.fps is not None and not (math.isfinite(self.fps) and self.fps > 0):
            raise UsageError(f"fps must be positive, got {self.fps!r}")
        if self.crops not in (1, 3):
            raise UsageError(f"crops must be 1 or 3, got {self.crops!r}")

    @property
    def by_time(self) -> bool:
        """Windows cut by the frames' timestamps (both lengths in seconds, no resampling)."""
        return self.fps is None and self.window.seconds and self.stride.seconds

    def to_dict(self) -> dict[str, Any]:
        return {"window": str(self.window), "stride": str(self.stride), "fps": self.fps, "crops": self.crops,
                "cover_end": self.cover_end}


@dataclass
class WindowPlan:
    """The windows of one video. ``start_frame``/``end_frame`` count frames of the time line (the resampled one
    with ``fps``), end exclusive; ``indices`` are the sampled frames of the video itself, ``[windows, frames]``."""

    starts_s: np.ndarray
    ends_s: np.ndarray
    start_frame: np.ndarray
    end_frame: np.ndarray
    indices: np.ndarray
    fps: float
    window_frames: float
    stride_frames: float
    window_s: float
    stride_s: float

    def __len__(self) -> int:
        return len(self.starts_s)


def _duration(times: np.ndarray, fps: float) -> float:
    """Seconds from the first frame to the end of the last one (which is shown for one frame interval)."""
    rel = np.asarray(times, dtype=np.float64) - float(times[0])
    frame_s = float(rel[-1] - rel[-2]) if len(rel) > 1 else 1.0 / fps
    return float(rel[-1] + frame_s)


def plan_windows(times: np.ndarray, fps: float, spec: WindowSpec, frames: int) -> WindowPlan:
    """Sliding windows over a video whose frames are shown at ``times`` (seconds; ``fps`` its average rate), each
    sampled to ``frames`` frames by :func:`uniformerv2.timeline.window_indices`: the frame shown at the centre of
    each of ``frames`` equal segments of the window.

    The time line is the video's own frames, or with ``spec.fps`` the resampled grid ``k / spec.fps`` (frame ``k``
    is the video frame shown at that time; the grid has ``floor(duration * fps)`` frames). Window ``i`` covers the
    time-line frames ``[i * stride, i * stride + window)``; windows go on while a whole window fits (a video
    shorter than one window is one window over all of it), plus, with ``cover_end``, one that ends with the video.
    So with ``window = 16, stride = 4`` and 8 frames per window, window ``i`` samples frames ``4 i + 1, 4 i + 3, ...,
    4 i + 15``. Lengths in seconds are rounded to whole frames of the time line, except when both are in seconds
    and nothing is resampled: then windows are cut by the frames' timestamps (a variable frame rate is followed).
    """
    from ..data.sampling import window_indices
    rel = np.asarray(times, dtype=np.float64) - float(times[0])
    n = len(rel)
    if n == 0:
        raise ValueError("a video without frames has no windows")
    duration = _duration(rel, fps)
    if spec.by_time:
        w, s = spec.window.value, spec.stride.value
        starts, ends, idx = window_indices(rel, w, s, frames, align_end=spec.cover_end, duration=duration)
        start_frame = np.searchsorted(rel, starts + 1e-6, side="right") - 1
        end_frame = np.searchsorted(rel, ends - 1e-6, side="right")
        return WindowPlan(starts, ends, start_frame.astype(np.int64), end_frame.astype(np.int64),
                          idx.astype(np.int64), float(fps), w * fps, s * fps, w, s)
    line_fps = float(spec.fps or fps)
    if spec.fps:
        m = max(1, int(math.floor(duration * line_fps + 1e-6)))
        source = np.clip(np.searchsorted(rel, np.arange(m) / line_fps + 1e-6, side="right") - 1, 0, n - 1)
    else:
        m, source = n, np.arange(n)
    w, s = spec.window.frames_at(line_fps), spec.stride.frames_at(line_fps)
    starts, ends, idx = window_indices(np.arange(m, dtype=np.float64), w, s, frames, align_end=spec.cover_end,
                                       duration=float(m))
    start_frame = np.round(starts).astype(np.int64)
    end_frame = np.round(ends).astype(np.int64)
    if spec.fps:
        starts_s, ends_s = start_frame / line_fps, end_frame / line_fps
    else:
        line = np.append(rel, duration)  # when each frame starts, and the end of the video
        starts_s, ends_s = line[start_frame], line[end_frame]
    return WindowPlan(starts_s, ends_s, start_frame, end_frame, source[idx].astype(np.int64), line_fps,
                      float(w), float(s), w / line_fps, s / line_fps)


# --------------------------------------------------------------------------------------------------- inputs

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


def _safe_rel(rel: str) -> str:
    """A relative path that stays inside the output directory (absolute paths and ``..`` parts are stripped)."""
    parts = [p for p in Path(rel).parts if p not in ("", ".", "..") and p != Path(rel).anchor]
    return str(Path(*parts)) if parts else "video"


def collect_videos(inputs: Sequence[str] = (), *, ann_file: str | os.PathLike | None = None,
                   data_root: str | os.PathLike = "") -> list[VideoJob]:
    """The videos of a run and their relative paths: an annotation list (paths as listed, relative to
    ``data_root``), or files (their name), folders (paths below the folder) and globs (paths below the glob's
    fixed part). Folders and globs that hold no video are kept as they are (the run reports them)."""
    from ..data import expand_inputs, read_annotation_list
    if bool(ann_file) == bool(inputs):
        raise UsageError("give the videos as VIDEO/DIR arguments or as --ann-file FILE [--data-root DIR]")
    jobs: list[tuple[str, str]] = []
    if ann_file:
        root = str(data_root or "")
        for sample in read_annotation_list(ann_file, root):
            rel = os.path.relpath(sample.path, root) if root else sample.path
            jobs.append((sample.path, _safe_rel(rel)))
    else:
        for item in inputs:
            if os.path.isdir(item):
                found = expand_inputs([item])
                jobs += [(f, _safe_rel(os.path.relpath(f, item)) if f != item else _safe_rel(item)) for f in found]
            elif any(ch in item for ch in "*?[") and not os.path.exists(item):
                fixed = []
                for part in Path(item).parts:
                    if any(ch in part for ch in "*?["):
                        break
                    fixed.append(part)
                base = str(Path(*fixed)) if fixed else "."
                jobs += [(f, _safe_rel(os.path.relpath(f, base) if f != item else os.path.basename(item)))
                         for f in expand_inputs([item])]
            else:
                jobs.append((item, os.path.basename(os.path.normpath(item)) or "video"))
    return [VideoJob(i, path, rel) for i, (path, rel) in enumerate(jobs)]


def assign_outputs(jobs: Sequence[VideoJob], fmt: str) -> list[VideoJob]:
    """Name every job's features file: its relative path with the extension replaced by ``.npy`` /
    ``.safetensors``; videos that would share a name keep their extension (``a.mp4.npy``, ``a.avi.npy``). The same
    video listed twice is an error."""
    if fmt not in FORMATS:
        raise UsageError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
    seen: dict[str, str] = {}
    for job in jobs:
        if job.rel in seen:
            what = "is listed twice" if os.path.abspath(seen[job.rel]) == os.path.abspath(job.path) else \
                f"is the relative path of two videos ({seen[job.rel]} and {job.path})"
            raise UsageError(f"{job.rel} {what}: each video's features go to one file named after its relative "
                             "path; give a folder or an --ann-file whose paths tell the videos apart")
        seen[job.rel] = job.path
    stems: dict[str, int] = {}
    for job in jobs:
        stem = str(Path(job.rel).with_suffix(""))
        stems[stem] = stems.get(stem, 0) + 1
    for job in jobs:
        stem = str(Path(job.rel).with_suffix(""))
        job.output = (job.rel if stems[stem] > 1 else stem) + "." + fmt
    return list(jobs)


# -------------------------------------------------------------------------------------------------- decoding

def _reason(path: str, e: BaseException) -> str:
    if isinstance(e, VideoDecodeError):
        return e.reason
    text = f"{type(e).__name__}: {e}"
    return text[len(path) + 2:] if text.startswith(path + ": ") else text


class _Stream(torch.utils.data.IterableDataset):
    """Items for the network, decoded in ``DataLoader`` workers (worker ``w`` of ``n`` takes jobs ``w, w + n, ...``):
    ``dict(job, views, windows, last, meta, error)``. Video mode: one item per video (all its views). Windows
    mode: chunks of at most ``chunk`` windows (``crops`` views each, window-major), ``meta`` on the first."""

    def __init__(self, jobs: Sequence[VideoJob], mode: str, protocol: Protocol, spec: WindowSpec | None,
                 backend: str, chunk: int) -> None:
        self.jobs, self.mode, self.protocol, self.spec = list(jobs), mode, protocol, spec
        self.backend, self.chunk = backend, max(1, chunk)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        info = torch.utils.data.get_worker_info()
        worker, workers = (info.id, info.num_workers) if info is not None else (0, 1)
        for k in range(worker, len(self.jobs), workers):
            yield from self._items(self.jobs[k])

    def _error(self, job: VideoJob, e: BaseException) -> dict[str, Any]:
        if isinstance(e, ImportError):  # a backend that is not installed is the caller's problem, not the video's
            raise e
        return dict(job=job.index, views=None, windows=0, last=True, meta=None, error=_reason(job.path, e))

    def _items(self, job: VideoJob) -> Iterator[dict[str, Any]]:
        from ..data import open_video, sample_test_indices, views_from_frames
        if os.path.isdir(job.path):
            yield self._error(job, VideoDecodeError(job.path, "a folder with no video files"))
            return
        try:
            reader = open_video(job.path, self.backend)
        except Exception as e:  # noqa: BLE001 - any decoder failure is this video's problem
            yield self._error(job, e)
            return
        with reader:
            p = self.protocol
            try:
                times = np.asarray(reader.times, dtype=np.float64)
                meta = dict(fps=float(reader.fps), frames=int(reader.num_frames),
                            duration_s=_duration(times, float(reader.fps)))
                if self.mode == "video":
                    inds = sample_test_indices(reader.num_frames, p)
                    unique, inverse = np.unique(inds, return_inverse=True)
                    views = views_from_frames(reader.read(unique), p, inverse=inverse.reshape(-1))
                    yield dict(job=job.index, views=views, windows=0, last=True, meta=meta, error=None)
                    return
                plan = plan_windows(times, float(reader.fps), self.spec, p.frames)
                meta["plan"] = plan
            except Exception as e:  # noqa: BLE001
                yield self._error(job, e)
                return
            crops = self.spec.crops
            for lo in range(0, len(plan), self.chunk):
                chunk = plan.indices[lo:lo + self.chunk]
                try:
                    unique, inverse = np.unique(chunk, return_inverse=True)
                    frames = reader.read(unique)
                    views = views_from_frames(frames, p.replace(clips=len(chunk), crops=crops),
                                              inverse=inverse.reshape(-1))  # crop-major
                    views = views.view((crops, len(chunk)) + views.shape[1:]).transpose(0, 1)
                    views = views.reshape((crops * len(chunk),) + views.shape[2:])  # window-major
                except Exception as e:  # noqa: BLE001
                    yield self._error(job, e)
                    return
                yield dict(job=job.index, views=views, windows=len(chunk), last=lo + self.chunk >= len(plan),
                           meta=meta if lo == 0 else None, error=None)


# --------------------------------------------------------------------------------------------------- journal

def _log_files(out_dir: Path) -> list[Path]:
    return sorted(Path(p) for p in glob.glob(str(out_dir / f"{LOG_PREFIX}*.jsonl")))


def _log_path(out_dir: Path, rank: int) -> Path:
    return out_dir / (f"{LOG_PREFIX}.jsonl" if rank == 0 else f"{LOG_PREFIX}.rank{rank}.jsonl")


def read_journal(out_dir: str | os.PathLike) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(run starts, video records) of every journal in ``out_dir``, oldest first; a line cut short by a kill is
    skipped."""
    starts, records = [], []
    for path in _log_files(Path(out_dir)):
        with open(path, encoding="utf-8", errors="replace") as f:
            for line in f:
                try:
                    entry = json.loads(line)
                except ValueError:
                    continue
                if not isinstance(entry, dict):
                    continue
                (starts if entry.get("event") == "start" else records).append(entry)
    key = lambda e: (e.get("time", 0.0), e.get("seq", 0))  # noqa: E731
    return sorted(starts, key=key), sorted(records, key=key)


def _sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _file_ok(out_dir: Path, entry: dict[str, Any]) -> bool:
    path = out_dir / entry["file"]
    try:
        if path.stat().st_size != entry["bytes"]:
            return False
        digest = hashlib.sha256()
        with open(path, "rb") as f:
            while chunk := f.read(1 << 20):
                digest.update(chunk)
        return digest.hexdigest() == entry["sha256"]
    except (OSError, KeyError, TypeError):
        return False


def _complete(out_dir: Path, record: dict[str, Any] | None) -> bool:
    """Whether a journal record says the video is done and its files are on disk, whole and unchanged."""
    return bool(record and record.get("event") == "done" and record.get("files")
                and all(_file_ok(out_dir, f) for f in record["files"]))


def _job_complete(out_dir: Path, job: VideoJob, record: dict[str, Any] | None) -> bool:
    return bool(record and record.get("output") == job.output and _complete(out_dir, record))


def _latest(records: Sequence[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    latest: dict[str, dict[str, Any]] = {}
    for r in records:
        if "video" in r:
            latest[r["video"]] = r
    return latest


# --------------------------------------------------------------------------------------------------- results

@dataclass
class ExtractResult:
    """What :func:`extract` did, as seen by every process: video ``rel`` paths done now, already done (skipped),
    and ``(path, reason)`` of the failures, in input order; the manifest files (rank 0)."""

    done: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failures: list[tuple[str, str]] = field(default_factory=list)
    num_videos: int = 0
    manifest: list[Path] = field(default_factory=list)

    @property
    def num_ok(self) -> int:
        return len(self.done) + len(self.skipped)


def _checkpoint_info(model: nn.Module) -> dict[str, Any]:
    pretrained = getattr(model, "pretrained_cfg", None)
    source = getattr(pretrained, "checkpoint", None)
    info: dict[str, Any] = {"model": getattr(pretrained, "preset", None), "checkpoint": None,
                            "checkpoint_sha256": None}
    if source is None:
        return info
    info["checkpoint"] = os.path.basename(str(source)) or str(source)
    if info["model"] is None:
        info["model"] = info["checkpoint"]
    try:
        from ..hub import resolve
        path = resolve(source, progress=False)
        digest = hashlib.sha256()
        with open(path, "rb") as f:
            while chunk := f.read(1 << 22):
                digest.update(chunk)
        info["checkpoint_sha256"] = digest.hexdigest()
    except Exception:  # noqa: BLE001 - a checkpoint that cannot be read again is recorded without its hash
        pass
    return info


def _settings(model: nn.Module, mode: str, kind: str, protocol: Protocol, spec: WindowSpec | None, fmt: str,
              dtype: torch.dtype | None, backend: str) -> dict[str, Any]:
    s: dict[str, Any] = {"mode": mode, "kind": kind, "format": fmt, "backend": backend,
                         "dtype": str(dtype or torch.float32).replace("torch.", ""),
                         **_checkpoint_info(model)}
    if mode == "video":
        s["protocol"] = protocol.to_dict()
    else:
        s["protocol"] = {"frames": protocol.frames, "size": protocol.size, "sampling": protocol.sampling}
        s["windows"] = spec.to_dict()
    return s


def _round(x: float | None, digits: int = 6) -> float | int | None:
    """``x`` rounded, an int when it is whole (frame counts, strides: ActionFormer reads them as ints)."""
    if x is None:
        return None
    x = round(float(x), digits)
    return int(x) if x.is_integer() else x


def _rows(jobs: Sequence[VideoJob], latest: dict[str, dict[str, Any]], settings: dict[str, Any]
          ) -> list[dict[str, Any]]:
    rows = []
    for job in jobs:
        r = latest.get(job.rel) or {}
        status = {"done": "ok", "failed": "failed"}.get(r.get("event"), "pending")
        row = {k: "" for k in MANIFEST_FIELDS}
        row.update({k: r.get(k, "") for k in MANIFEST_FIELDS if r.get(k) is not None})
        row.update(video=job.rel, path=job.path, status=status, kind=settings["kind"], mode=settings["mode"],
                   model=settings.get("model") or "", checkpoint=settings.get("checkpoint") or "",
                   checkpoint_sha256=settings.get("checkpoint_sha256") or "")
        if status != "ok":
            row.update(output="", sha256="", feature_shape="", feature_dim="", num_windows="")
        if status != "failed":
            row["reason"] = ""
        rows.append(row)
    return rows


def write_manifest(out_dir: str | os.PathLike, jobs: Sequence[VideoJob], settings: dict[str, Any]) -> list[Path]:
    """``manifest.csv`` and ``manifest.json`` of ``jobs`` from the journal, written atomically."""
    out_dir = Path(out_dir)
    _, records = read_journal(out_dir)
    rows = _rows(jobs, _latest(records), settings)
    ok = [r for r in rows if r["status"] == "ok"]

    def common(key: str) -> Any:
        values = {json.dumps(r[key]) for r in ok if r[key] != ""}
        return json.loads(values.pop()) if len(values) == 1 else None

    summary = {"settings": settings,
               "actionformer": {"feat_stride": common("feat_stride"), "num_frames": common("num_frames"),
                                "default_fps": common("default_fps"), "input_dim": common("feature_dim")},
               "counts": {s: sum(r["status"] == s for r in rows) for s in ("ok", "failed", "pending")},
               "videos": rows}

    def write_csv(f: Any) -> None:
        writer = csv.DictWriter(f, fieldnames=list(MANIFEST_FIELDS))
        writer.writeheader()
        for row in rows:
            writer.writerow({k: json.dumps(v) if isinstance(v, list) else v for k, v in row.items()})
    return [atomic_write_file(out_dir / "manifest.csv", write_csv, binary=False),
            atomic_write_text(out_dir / "manifest.json", json.dumps(summary, indent=1) + "\n")]


# --------------------------------------------------------------------------------------------------- writing

def _remove_stale_temps(path: Path) -> None:
    """Temporary files a killed writer left beside ``path`` (atomic writes clean up after any other failure)."""
    for tmp in path.parent.glob(f".{glob.escape(path.name)}.*.tmp"):
        try:
            tmp.unlink()
        except OSError:
            pass


def _write(out_dir: Path, rel: str, data: bytes) -> dict[str, Any]:
    path = out_dir / rel
    _remove_stale_temps(path)
    atomic_write_bytes(path, data)
    return {"file": rel, "bytes": len(data), "sha256": _sha256_bytes(data)}


def _windows_csv(plan: WindowPlan) -> bytes:
    out = io.StringIO(newline="")
    writer = csv.writer(out)
    writer.writerow(["window", "start_s", "end_s", "start_frame", "end_frame", "frames"])
    for i in range(len(plan)):
        writer.writerow([i, f"{plan.starts_s[i]:.6f}", f"{plan.ends_s[i]:.6f}", int(plan.start_frame[i]),
                         int(plan.end_frame[i]), " ".join(str(int(v)) for v in plan.indices[i])])
    return out.getvalue().encode("utf-8")


def _features_bytes(features: np.ndarray, fmt: str, plan: WindowPlan | None, meta: dict[str, str]) -> bytes:
    if fmt == "npy":
        buf = io.BytesIO()
        np.save(buf, features, allow_pickle=False)
        return buf.getvalue()
    from safetensors.numpy import save
    tensors = {"features": np.ascontiguousarray(features)}
    if plan is not None:
        tensors.update(start_s=np.asarray(plan.starts_s, np.float64), end_s=np.asarray(plan.ends_s, np.float64),
                       start_frame=plan.start_frame, end_frame=plan.end_frame,
                       frame_indices=np.ascontiguousarray(plan.indices))
    return save(tensors, metadata=meta)


# ------------------------------------------------------------------------------------------------- the engine

def extract(model: nn.Module, jobs: Sequence[VideoJob], out_dir: str | os.PathLike, *, mode: str = "video",
            kind: str = "pooled", protocol: Protocol | None = None, windows: WindowSpec | None = None,
            fmt: str = "npy", batch_views: int = 24, workers: int = 0, device: str | torch.device | None = None,
            dtype: str | torch.dtype | None = None, compile: bool = False, backend: str = "pyav",
            overwrite: bool = False, progress: bool = True, distributed: bool | None = None,
            on_failure: Callable[[str, str], None] | None = None, manifest_every_s: float = 300.0
            ) -> ExtractResult:
    """Extract ``kind`` features of ``jobs`` (:func:`collect_videos`) into ``out_dir``; see the module docstring.

    ``protocol``: the test views (video mode) and the frames and size of every window (default: the model's).
    ``windows``: the :class:`WindowSpec` of windows mode. ``batch_views``: at most this many views per forward pass.
    ``workers``: decoding processes. ``dtype``/``compile``: as in :class:`~uniformerv2.inference.VideoClassifier`.
    ``overwrite``: redo every video (the journal is started afresh). ``on_failure(path, reason)`` is called (on the
    process that met it) for every video that cannot be decoded; the run goes on. ``distributed``: None = share the
    videos across the ranks of an initialised process group.
    """
    from torch.utils.data import DataLoader
    from tqdm.auto import tqdm

    from ..data import normalize

    if mode not in MODES:
        raise UsageError(f"unknown mode {mode!r}; choose one of {', '.join(MODES)}")
    if kind not in FEATURE_KINDS:
        raise UsageError(f"unknown feature kind {kind!r}; choose one of {', '.join(FEATURE_KINDS)}")
    if fmt not in FORMATS:
        raise UsageError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
    if int(batch_views) < 1:
        raise UsageError(f"batch_views must be >= 1, got {batch_views}")
    protocol = protocol or model.pretrained_cfg.protocol
    spec = (windows or WindowSpec()) if mode == "windows" else None
    jobs = list(jobs)
    if any(not j.output for j in jobs):
        jobs = assign_outputs(jobs, fmt)
    out_dir = Path(out_dir)
    device = torch.device(device) if device is not None else next(model.parameters()).device
    dtype = resolve_dtype(dtype, device)
    if distributed is None:
        distributed = torch.distributed.is_available() and torch.distributed.is_initialized() \
            and torch.distributed.get_world_size() > 1
    rank, world = (D.get_rank(), D.get_world_size()) if distributed else (0, 1)
    settings = _settings(model, mode, kind, protocol, spec, fmt, dtype, backend)

    # 1. the journal: started afresh with overwrite (rank 0, before anyone reads it), then read by every rank
    if rank == 0:
        out_dir.mkdir(parents=True, exist_ok=True)
        if overwrite:
            for path in _log_files(out_dir):
                path.unlink()
    if distributed:
        D.barrier()
    starts, records = read_journal(out_dir)
    for start in starts:
        if start.get("settings") != settings:
            old, new = start.get("settings") or {}, settings
            keys = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
            shown = "; ".join(f"{k}: {old.get(k)!r} there, {new.get(k)!r} now" for k in keys[:4])
            raise UsageError(f"{out_dir} holds features extracted with other settings ({shown}); pass --overwrite "
                             "to redo them, or choose another --out-dir")
    latest = _latest(records)
    todo = [j for j in jobs if overwrite or not _job_complete(out_dir, j, latest.get(j.rel))]
    done_before = {j.rel for j in jobs} - {j.rel for j in todo}
    if distributed:
        D.barrier()  # everyone has read the journal before anyone appends to it
    mine = todo[rank::world]

    log = _log_path(out_dir, rank)
    run_id = f"{time.strftime('%Y%m%dT%H%M%S')}-{uuid.uuid4().hex[:8]}"
    seq = [0]

    def journal(entry: dict[str, Any]) -> None:
        seq[0] += 1
        append_line(log, json.dumps({**entry, "run": run_id, "rank": rank, "time": time.time(), "seq": seq[0]}))

    journal({"event": "start", "settings": settings, "videos": len(jobs), "todo": len(todo),
             "skipped": len(done_before), "world_size": world})

    # 2. decoding in workers, the network in this process
    views_per_window = spec.crops if spec else protocol.views
    chunk = max(1, int(batch_views) // views_per_window) if spec else 1
    stream = _Stream(mine, mode, protocol, spec, backend, chunk)
    n_workers = max(0, min(int(workers), len(mine)))
    loader = DataLoader(stream, batch_size=None, num_workers=n_workers, pin_memory=device.type == "cuda",
                        prefetch_factor=4 if n_workers else None)
    model = model.eval().to(device)
    forward = feature_forward(model, kind, compile=compile)
    autocast_context = autocast(device, dtype)
    by_index = {j.index: j for j in mine}
    parts: dict[int, list[torch.Tensor]] = {}
    metas: dict[int, dict[str, Any]] = {}
    failed: set[int] = set()
    done_now: list[str] = []
    failures: list[tuple[int, str, str]] = []
    pending: list[dict[str, Any]] = []
    info = {k: settings.get(k) for k in ("model", "checkpoint", "checkpoint_sha256")}
    last_manifest = [time.monotonic()]

    bar = tqdm(total=len(mine), unit="video", disable=not progress or rank != 0, dynamic_ncols=True, file=sys.stderr,
               desc=f"extract {mode}" + (f" (rank 0 of {world})" if distributed else ""))

    def fail(index: int, reason: str) -> None:
        job = by_index[index]
        failed.add(index)
        parts.pop(index, None)
        metas.pop(index, None)
        failures.append((index, job.path, reason))
        journal({"event": "failed", "video": job.rel, "path": job.path, "reason": reason})
        if on_failure is not None:
            on_failure(job.path, reason)
        bar.update(1)
        bar.set_postfix(failed=len(failures), refresh=False)

    def finish(index: int) -> None:
        job, meta = by_index[index], metas.pop(index)
        feats = torch.cat(parts.pop(index)).numpy() if spec else parts.pop(index)[0].numpy()
        plan: WindowPlan | None = meta.get("plan")
        record: dict[str, Any] = {
            "event": "done", "video": job.rel, "path": job.path, "output": job.output,
            "feature_shape": list(feats.shape), "feature_dim": int(feats.shape[-1]),
            "fps": _round(meta["fps"]), "frames": meta["frames"], "duration_s": _round(meta["duration_s"]),
            "clip_frames": protocol.frames, "views": views_per_window, **info}
        files = []
        if plan is not None:
            record.update(num_windows=len(plan), window_frames=_round(plan.window_frames),
                          stride_frames=_round(plan.stride_frames), window_s=_round(plan.window_s),
                          stride_s=_round(plan.stride_s), feat_stride=_round(plan.stride_frames),
                          num_frames=_round(plan.window_frames), default_fps=_round(plan.fps))
            files.append(_write(out_dir, job.sidecar, _windows_csv(plan)))
        meta_strings = {"video": job.rel, "kind": kind, "mode": mode, "settings": json.dumps(settings)}
        data = _features_bytes(np.ascontiguousarray(feats, dtype=np.float32), fmt, plan, meta_strings)
        files.insert(0, _write(out_dir, job.output, data))
        record["sha256"] = files[0]["sha256"]
        record["files"] = files
        journal(record)
        done_now.append(job.rel)
        bar.update(1)

    def run_pending() -> None:
        live = [it for it in pending if it["job"] not in failed]
        pending.clear()
        if not live:
            return
        views = torch.cat([it["views"] for it in live])
        outs = []
        for start in range(0, views.shape[0], batch_views):
            x = normalize(views[start:start + batch_views].to(device, non_blocking=True))
            with autocast_context:
                outs.append(forward(x).float().cpu())
        out = torch.cat(outs)
        for it, f in zip(live, out.split([int(it["views"].shape[0]) for it in live])):
            index = it["job"]
            if index in failed:
                continue
            if spec:
                parts.setdefault(index, []).append(f.view((it["windows"], spec.crops) + f.shape[1:]).mean(1))
            else:
                parts[index] = [f.mean(0)]
            if it["last"]:
                finish(index)

    with torch.inference_mode(), bar:
        for item in loader:
            index = item["job"]
            if item.get("meta") is not None:
                metas[index] = item["meta"]
            if item["error"] is not None:
                fail(index, item["error"])
                continue
            pending.append(item)
            if sum(int(it["views"].shape[0]) for it in pending) >= batch_views:
                run_pending()
            if rank == 0 and time.monotonic() - last_manifest[0] > manifest_every_s:
                write_manifest(out_dir, jobs, settings)
                last_manifest[0] = time.monotonic()
        run_pending()

    # 3. everyone's results, the manifest from the journals
    if distributed:
        parts_all = D.all_gather_objects((done_now, [(i, p, r) for i, p, r in failures]))
        done_now = [rel for part in parts_all for rel in part[0]]
        failures = [f for part in parts_all for f in part[1]]
    order = {j.rel: j.index for j in jobs}
    failures.sort(key=lambda f: f[0])
    result = ExtractResult(done=sorted(done_now, key=order.__getitem__),
                           skipped=sorted(done_before, key=order.__getitem__),
                           failures=[(p, r) for _, p, r in failures], num_videos=len(jobs))
    if len(set(result.done)) != len(result.done) or len(result.done) + len(result.failures) != len(todo):
        raise RuntimeError("internal error: the videos were not each extracted exactly once")
    if rank == 0:
        result.manifest = write_manifest(out_dir, jobs, settings)
    return result
