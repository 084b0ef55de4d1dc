"""The record of an extraction run: the journal (one JSON line per finished or failed video, appended as it
happens, so a killed run loses at most the video in flight), the run's settings, and the manifest rebuilt from the
journal (``manifest.csv`` / ``manifest.json``)."""

from __future__ import annotations

import csv
import hashlib
import json
import os
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..atomic import append_line, atomic_write_file, atomic_write_text
from ..hub import sha256_file
from ..protocol import Protocol
from .jobs import VideoJob
from .windows import WindowSpec

__all__ = [
    "LOG_PREFIX",
    "MANIFEST_FIELDS",
    "Journal",
    "log_files",
    "read_journal",
    "run_settings",
    "settings_differences",
    "latest_records",
    "job_complete",
    "write_manifest",
    "round_number",
    "sha256_bytes",
]

LOG_PREFIX = "manifest.log"
MANIFEST_FIELDS = (
    "video",
    "status",
    "reason",
    "output",
    "num_windows",
    "feature_dim",
    "feature_shape",
    "fps",
    "frames",
    "duration_s",
    "window_frames",
    "stride_frames",
    "window_s",
    "stride_s",
    "feat_stride",
    "num_frames",
    "default_fps",
    "clip_frames",
    "views",
    "kind",
    "mode",
    "model",
    "checkpoint",
    "checkpoint_sha256",
    "path",
    "sha256",
    "run",
)


# ---------------------------------------------------------------------------------------------- the journal


def log_files(out_dir: Path) -> list[Path]:
    """Every process's journal in ``out_dir``."""
    return sorted(Path(out_dir).glob(f"{LOG_PREFIX}*.jsonl"))


class Journal:
    """This process's journal in ``out_dir`` (rank 0: ``manifest.log.jsonl``, rank N: ``manifest.log.rankN.jsonl``):
    every entry is one appended line, stamped with the run, the rank, the time and a sequence number."""

    def __init__(self, out_dir: Path, rank: int) -> None:
        self.path = out_dir / (f"{LOG_PREFIX}.jsonl" if rank == 0 else f"{LOG_PREFIX}.rank{rank}.jsonl")
        self.rank = rank
        self.run = f"{time.strftime('%Y%m%dT%H%M%S')}-{uuid.uuid4().hex[:8]}"
        self.seq = 0

    def append(self, entry: dict[str, Any]) -> None:
        self.seq += 1
        append_line(
            self.path, json.dumps({**entry, "run": self.run, "rank": self.rank, "time": time.time(), "seq": self.seq})
        )


def read_journal(out_dir: str | os.PathLike) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(run starts, video records) of every journal in ``out_dir``, oldest first; a line cut short by a kill is
    skipped."""
    starts: list[dict[str, Any]] = []
    records: list[dict[str, Any]] = []
    for path in log_files(Path(out_dir)):
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


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _file_ok(out_dir: Path, entry: dict[str, Any]) -> bool:
    path = out_dir / entry["file"]
    try:
        if path.stat().st_size != entry["bytes"]:
            return False
        return sha256_file(path) == entry["sha256"]
    except (OSError, KeyError, TypeError):
        return False


def _complete(out_dir: Path, record: dict[str, Any] | None) -> bool:
    """Whether a journal record says the video is done and its files are on disk, whole and unchanged."""
    return bool(
        record
        and record.get("event") == "done"
        and record.get("files")
        and all(_file_ok(out_dir, f) for f in record["files"])
    )


def job_complete(out_dir: Path, job: VideoJob, record: dict[str, Any] | None) -> bool:
    """Whether ``job``'s latest journal ``record`` says its features file is written, whole and unchanged."""
    return bool(record and record.get("output") == job.output and _complete(out_dir, record))


def latest_records(records: Sequence[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Every video's latest record (by relative path)."""
    latest: dict[str, dict[str, Any]] = {}
    for r in records:
        if "video" in r:
            latest[r["video"]] = r
    return latest


# --------------------------------------------------------------------------------------------- the settings


def _checkpoint_info(model: nn.Module) -> dict[str, Any]:
    pretrained = getattr(model, "pretrained_cfg", None)
    source = getattr(pretrained, "checkpoint", None)
    info: dict[str, Any] = {"model": getattr(pretrained, "preset", None), "checkpoint": None, "checkpoint_sha256": None}
    if source is None:
        return info
    info["checkpoint"] = os.path.basename(str(source)) or str(source)
    if info["model"] is None:
        info["model"] = info["checkpoint"]
    try:
        from ..hub import resolve

        path = resolve(source, progress=False)
        info["checkpoint_sha256"] = sha256_file(path)
    except Exception:  # noqa: BLE001 - a checkpoint that cannot be read again is recorded without its hash
        pass
    return info


def run_settings(
    model: nn.Module,
    mode: str,
    kind: str,
    protocol: Protocol,
    spec: WindowSpec | None,
    fmt: str,
    dtype: torch.dtype | None,
    backend: str,
) -> dict[str, Any]:
    """What makes two runs' features the same: a run in an ``out_dir`` whose journal has other settings is
    refused."""
    s: dict[str, Any] = {
        "mode": mode,
        "kind": kind,
        "format": fmt,
        "backend": backend,
        "dtype": str(dtype or torch.float32).replace("torch.", ""),
        **_checkpoint_info(model),
    }
    if mode == "video":
        s["protocol"] = protocol.to_dict()
    else:
        assert spec is not None
        s["protocol"] = {"frames": protocol.frames, "size": protocol.size, "sampling": protocol.sampling}
        s["windows"] = spec.to_dict()
    return s


def _as_written_now(settings: dict[str, Any]) -> dict[str, Any]:
    """Settings of an earlier journal in today's words: journals written before the one duration vocabulary name
    the last window ``cover_end`` and write lengths in frames as bare numbers (``16``, now ``16f``)."""
    windows = settings.get("windows")
    if not isinstance(windows, dict) or "cover_end" not in windows:
        return settings
    windows = dict(windows)
    windows["align_end"] = windows.pop("cover_end")
    for key in ("window", "stride"):
        text = str(windows.get(key, ""))
        if text and not text.endswith("s"):  # seconds were written 2s then as now
            windows[key] = f"{text}f"
    return {**settings, "windows": windows}


def settings_differences(old: dict[str, Any] | None, new: dict[str, Any]) -> list[str]:
    """The settings in which a journal's run start ``old`` differs from ``new``, each as ``key: old there, new
    now`` (empty when they are the same run's)."""
    old = _as_written_now(old or {})
    keys = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
    return [f"{k}: {old.get(k)!r} there, {new.get(k)!r} now" for k in keys]


# --------------------------------------------------------------------------------------------- the manifest


def round_number(x: float | None, digits: int = 6) -> float | int | None:
    """``x`` rounded, an int when it is whole (frame counts, strides: ActionFormer reads them as ints)."""
    if x is None:
        return None
    x = round(float(x), digits)
    return int(x) if x.is_integer() else x


def _rows(
    jobs: Sequence[VideoJob], latest: dict[str, dict[str, Any]], settings: dict[str, Any]
) -> list[dict[str, Any]]:
    rows = []
    statuses: dict[object, str] = {"done": "ok", "failed": "failed"}  # keyed by a record's "event", any JSON value
    for job in jobs:
        r = latest.get(job.rel) or {}
        status = statuses.get(r.get("event"), "pending")
        row = {k: "" for k in MANIFEST_FIELDS}
        row.update({k: r.get(k, "") for k in MANIFEST_FIELDS if r.get(k) is not None})
        row.update(
            video=job.rel,
            path=job.path,
            status=status,
            kind=settings["kind"],
            mode=settings["mode"],
            model=settings.get("model") or "",
            checkpoint=settings.get("checkpoint") or "",
            checkpoint_sha256=settings.get("checkpoint_sha256") or "",
        )
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
    rows = _rows(jobs, latest_records(records), settings)
    ok = [r for r in rows if r["status"] == "ok"]

    def common(key: str) -> Any:
        values = {json.dumps(r[key]) for r in ok if r[key] != ""}
        return json.loads(values.pop()) if len(values) == 1 else None

    summary = {
        "settings": settings,
        "actionformer": {
            "feat_stride": common("feat_stride"),
            "num_frames": common("num_frames"),
            "default_fps": common("default_fps"),
            "input_dim": common("feature_dim"),
        },
        "counts": {s: sum(r["status"] == s for r in rows) for s in ("ok", "failed", "pending")},
        "videos": rows,
    }

    def write_csv(f: Any) -> None:
        writer = csv.DictWriter(f, fieldnames=list(MANIFEST_FIELDS))
        writer.writeheader()
        for row in rows:
            writer.writerow({k: json.dumps(v) if isinstance(v, list) else v for k, v in row.items()})

    return [
        atomic_write_file(out_dir / "manifest.csv", write_csv, binary=False),
        atomic_write_text(out_dir / "manifest.json", json.dumps(summary, indent=1) + "\n"),
    ]
