"""The files of one extracted video: its features (``.npy`` or ``.safetensors``) and, in windows mode, the windows
table beside them (``.windows.csv``), each written atomically and described (size, sha256) for the journal."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

import numpy as np

from ..atomic import atomic_write_bytes, remove_stale_temporaries
from .jobs import VideoJob
from .journal import sha256_bytes
from .windows import WindowPlan

__all__ = ["write_video_files"]


def _write(out_dir: Path, rel: str, data: bytes) -> dict[str, Any]:
    path = out_dir / rel
    remove_stale_temporaries(path)
    atomic_write_bytes(path, data)
    return {"file": rel, "bytes": len(data), "sha256": sha256_bytes(data)}


def _windows_csv(plan: WindowPlan) -> bytes:
    out = io.StringIO(newline="")
    writer = csv.writer(out)
    writer.writerow(["window", "start_s", "end_s", "start_frame", "end_frame", "frames"])
    for i in range(len(plan)):
        writer.writerow(
            [
                i,
                f"{plan.starts_s[i]:.6f}",
                f"{plan.ends_s[i]:.6f}",
                int(plan.start_frame[i]),
                int(plan.end_frame[i]),
                " ".join(str(int(v)) for v in plan.indices[i]),
            ]
        )
    return out.getvalue().encode("utf-8")


def _features_bytes(features: np.ndarray, fmt: str, plan: WindowPlan | None, meta: dict[str, str]) -> bytes:
    if fmt == "npy":
        buf = io.BytesIO()
        np.save(buf, features, allow_pickle=False)
        return buf.getvalue()
    from safetensors.numpy import save

    tensors = {"features": np.ascontiguousarray(features)}
    if plan is not None:
        tensors.update(
            start_s=np.asarray(plan.starts_s, np.float64),
            end_s=np.asarray(plan.ends_s, np.float64),
            start_frame=plan.start_frame,
            end_frame=plan.end_frame,
            frame_indices=np.ascontiguousarray(plan.indices),
        )
    return save(tensors, metadata=meta)


def write_video_files(
    out_dir: Path, job: VideoJob, features: np.ndarray, fmt: str, plan: WindowPlan | None, meta: dict[str, str]
) -> list[dict[str, Any]]:
    """Write ``job``'s features (float32; with ``plan``, the windows table first) under ``out_dir``; return what
    the journal records of each file (``file``, ``bytes``, ``sha256``), the features file first. ``meta``: strings
    a safetensors file carries."""
    files = []
    if plan is not None:
        files.append(_write(out_dir, job.sidecar, _windows_csv(plan)))
    data = _features_bytes(np.ascontiguousarray(features, dtype=np.float32), fmt, plan, meta)
    files.insert(0, _write(out_dir, job.output, data))
    return files
