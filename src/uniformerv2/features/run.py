"""An extraction run: videos decoded in ``DataLoader`` workers (:class:`_Stream`), the network over batches of
their views in this process, every video's files and journal line as soon as it is done (:func:`extract`)."""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..duration import video_duration
from ..engine import distributed as D
from ..errors import UsageError, VideoDecodeError
from ..model import UniFormerV2
from ..precision import autocast, resolve_dtype
from ..protocol import Protocol
from .files import write_video_files
from .jobs import VideoJob, assign_outputs, check_format
from .journal import (
    Journal,
    job_complete,
    latest_records,
    log_files,
    read_journal,
    round_number,
    run_settings,
    settings_differences,
    write_manifest,
)
from .network import check_kind, feature_forward
from .windows import WindowPlan, WindowSpec, plan_windows

__all__ = ["MODES", "ExtractResult", "extract"]

MODES = ("video", "windows")


def _reason(path: str, e: BaseException) -> str:
    if isinstance(e, VideoDecodeError):
        return e.reason
    text = f"{type(e).__name__}: {e}"
    return text[len(path) + 2 :] if text.startswith(path + ": ") else text


class _Stream(torch.utils.data.IterableDataset):
    """Items for the network, decoded in ``DataLoader`` workers (worker ``w`` of ``n`` takes jobs ``w, w + n, ...``):
    ``dict(job, views, windows, last, meta, error)``. Video mode: one item per video (all its views). Windows
    mode: chunks of at most ``chunk`` windows (``crops`` views each, window-major), ``meta`` on the first."""

    def __init__(
        self, jobs: Sequence[VideoJob], mode: str, protocol: Protocol, spec: WindowSpec | None, backend: str, chunk: int
    ) -> None:
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
                meta: dict[str, Any] = dict(
                    fps=float(reader.fps),
                    frames=int(reader.num_frames),
                    duration_s=video_duration(times, float(reader.fps)),
                )
                if self.mode == "video":
                    inds = sample_test_indices(reader.num_frames, p)
                    unique, inverse = np.unique(inds, return_inverse=True)
                    views = views_from_frames(reader.read(unique), p, inverse=inverse.reshape(-1))
                    yield dict(job=job.index, views=views, windows=0, last=True, meta=meta, error=None)
                    return
                assert self.spec is not None
                plan = plan_windows(times, float(reader.fps), self.spec, p.frames)
                meta["plan"] = plan
            except Exception as e:  # noqa: BLE001
                yield self._error(job, e)
                return
            crops = self.spec.crops
            for lo in range(0, len(plan), self.chunk):
                chunk = plan.indices[lo : lo + self.chunk]
                try:
                    unique, inverse = np.unique(chunk, return_inverse=True)
                    frames = reader.read(unique)
                    views = views_from_frames(
                        frames, p.replace(clips=len(chunk), crops=crops), inverse=inverse.reshape(-1)
                    )  # crop-major
                    # [crops * windows, ...] -> [windows * crops, ...]: a window's crops side by side
                    views = views.view((crops, len(chunk)) + views.shape[1:]).transpose(0, 1)
                    views = views.reshape((crops * len(chunk),) + views.shape[2:])
                except Exception as e:  # noqa: BLE001
                    yield self._error(job, e)
                    return
                yield dict(
                    job=job.index,
                    views=views,
                    windows=len(chunk),
                    last=lo + self.chunk >= len(plan),
                    meta=meta if lo == 0 else None,
                    error=None,
                )


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


def _check_journal(out_dir: Path, settings: dict[str, Any]) -> list[dict[str, Any]]:
    """The journal's video records, when every run it holds had ``settings``; else a :class:`UsageError`."""
    starts, records = read_journal(out_dir)
    for start in starts:
        differences = settings_differences(start.get("settings"), settings)
        if differences:
            raise UsageError(
                f"{out_dir} holds features extracted with other settings ({'; '.join(differences[:4])});"
                " pass --overwrite to redo them, or choose another --out-dir"
            )
    return records


def _done_record(
    job: VideoJob, feats: np.ndarray, meta: dict[str, Any], protocol: Protocol, views: int, info: dict[str, Any]
) -> dict[str, Any]:
    """The journal line of a finished video (its files are added once written)."""
    plan: WindowPlan | None = meta.get("plan")
    record: dict[str, Any] = {
        "event": "done",
        "video": job.rel,
        "path": job.path,
        "output": job.output,
        "feature_shape": list(feats.shape),
        "feature_dim": int(feats.shape[-1]),
        "fps": round_number(meta["fps"]),
        "frames": meta["frames"],
        "duration_s": round_number(meta["duration_s"]),
        "clip_frames": protocol.frames,
        "views": views,
        **info,
    }
    if plan is not None:  # ActionFormer's feat_stride / num_frames / default_fps: the windows on its time line
        record.update(
            num_windows=len(plan),
            window_frames=round_number(plan.window_frames),
            stride_frames=round_number(plan.stride_frames),
            window_s=round_number(plan.window_s),
            stride_s=round_number(plan.stride_s),
            feat_stride=round_number(plan.stride_frames),
            num_frames=round_number(plan.window_frames),
            default_fps=round_number(plan.fps),
        )
    return record


def extract(
    model: UniFormerV2,
    jobs: Sequence[VideoJob],
    out_dir: str | os.PathLike,
    *,
    mode: str = "video",
    kind: str = "pooled",
    protocol: Protocol | None = None,
    windows: WindowSpec | None = None,
    fmt: str = "npy",
    batch_views: int = 24,
    workers: int = 0,
    device: str | torch.device | None = None,
    dtype: str | torch.dtype | None = None,
    compile: bool = False,
    backend: str = "pyav",
    overwrite: bool = False,
    progress: bool = True,
    distributed: bool | None = None,
    on_failure: Callable[[str, str], None] | None = None,
    manifest_every_s: float = 300.0,
) -> ExtractResult:
    """Extract ``kind`` features of ``jobs`` (:func:`~uniformerv2.features.collect_videos`) into ``out_dir``; see
    :mod:`uniformerv2.features`.

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
    check_kind(kind)
    check_format(fmt)
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
        distributed = (
            torch.distributed.is_available()
            and torch.distributed.is_initialized()
            and torch.distributed.get_world_size() > 1
        )
    rank, world = (D.get_rank(), D.get_world_size()) if distributed else (0, 1)
    settings = run_settings(model, mode, kind, protocol, spec, fmt, dtype, backend)

    # 1. the journal: started afresh with overwrite (rank 0, before anyone reads it), then read by every rank
    if rank == 0:
        out_dir.mkdir(parents=True, exist_ok=True)
        if overwrite:
            for path in log_files(out_dir):
                path.unlink()
    if distributed:
        D.barrier()
    latest = latest_records(_check_journal(out_dir, settings))
    todo = [j for j in jobs if overwrite or not job_complete(out_dir, j, latest.get(j.rel))]
    done_before = {j.rel for j in jobs} - {j.rel for j in todo}
    if distributed:
        D.barrier()  # everyone has read the journal before anyone appends to it
    mine = todo[rank::world]
    journal = Journal(out_dir, rank)
    journal.append(
        {
            "event": "start",
            "settings": settings,
            "videos": len(jobs),
            "todo": len(todo),
            "skipped": len(done_before),
            "world_size": world,
        }
    )

    # 2. decoding in workers, the network in this process
    views_per_window = spec.crops if spec else protocol.views
    chunk = max(1, int(batch_views) // views_per_window) if spec else 1
    n_workers = max(0, min(int(workers), len(mine)))
    loader = DataLoader(
        _Stream(mine, mode, protocol, spec, backend, chunk),
        batch_size=None,
        num_workers=n_workers,
        pin_memory=device.type == "cuda",
        prefetch_factor=4 if n_workers else None,
    )
    model = model.eval().to(device)
    forward = feature_forward(model, kind, compile=compile)
    autocast_context = autocast(device, dtype)
    by_index = {j.index: j for j in mine}
    parts: dict[int, list[torch.Tensor]] = {}  # a video's features so far: one per chunk of windows
    metas: dict[int, dict[str, Any]] = {}
    failed: set[int] = set()
    done_now: list[str] = []
    failures: list[tuple[int, str, str]] = []
    pending: list[dict[str, Any]] = []
    info = {k: settings.get(k) for k in ("model", "checkpoint", "checkpoint_sha256")}
    last_manifest = time.monotonic()

    bar = tqdm(
        total=len(mine),
        unit="video",
        disable=not progress or rank != 0,
        dynamic_ncols=True,
        file=sys.stderr,
        desc=f"extract {mode}" + (f" (rank 0 of {world})" if distributed else ""),
    )

    def fail(index: int, reason: str) -> None:
        job = by_index[index]
        failed.add(index)
        parts.pop(index, None)
        metas.pop(index, None)
        failures.append((index, job.path, reason))
        journal.append({"event": "failed", "video": job.rel, "path": job.path, "reason": reason})
        if on_failure is not None:
            on_failure(job.path, reason)
        bar.update(1)
        bar.set_postfix(failed=len(failures), refresh=False)

    def finish(index: int) -> None:
        job, meta = by_index[index], metas.pop(index)
        feats = torch.cat(parts.pop(index)).numpy() if spec else parts.pop(index)[0].numpy()
        record = _done_record(job, feats, meta, protocol, views_per_window, info)
        strings = {"video": job.rel, "kind": kind, "mode": mode, "settings": json.dumps(settings)}
        record["files"] = write_video_files(out_dir, job, feats, fmt, meta.get("plan"), strings)
        record["sha256"] = record["files"][0]["sha256"]
        journal.append(record)
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
            x = normalize(views[start : start + batch_views].to(device, non_blocking=True))
            with autocast_context:
                outs.append(forward(x).float().cpu())
        out = torch.cat(outs)
        for it, f in zip(live, out.split([int(it["views"].shape[0]) for it in live])):
            index = it["job"]
            if index in failed:
                continue
            if spec:  # [windows * crops, ...] -> [windows, ...]: each window's crops averaged
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
            if rank == 0 and time.monotonic() - last_manifest > manifest_every_s:
                write_manifest(out_dir, jobs, settings)
                last_manifest = time.monotonic()
        run_pending()

    # 3. everyone's results, the manifest from the journals
    if distributed:
        parts_all = D.all_gather_objects((done_now, list(failures)))
        done_now = [rel for part in parts_all for rel in part[0]]
        failures = [f for part in parts_all for f in part[1]]
    order = {j.rel: j.index for j in jobs}
    failures.sort(key=lambda f: f[0])
    result = ExtractResult(
        done=sorted(done_now, key=order.__getitem__),
        skipped=sorted(done_before, key=order.__getitem__),
        failures=[(p, r) for _, p, r in failures],
        num_videos=len(jobs),
    )
    if len(set(result.done)) != len(result.done) or len(result.done) + len(result.failures) != len(todo):
        raise RuntimeError("internal error: the videos were not each extracted exactly once")
    if rank == 0:
        result.manifest = write_manifest(out_dir, jobs, settings)
    return result
