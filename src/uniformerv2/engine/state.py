"""Training-state checkpoints: atomic writes, the last N kept, the best marked, and every RNG captured.

A training checkpoint (``DIR/checkpoints/epoch_E_step_S.pt``, a plain ``torch.save`` dict read back with
``weights_only=True``) holds the model, optimiser, schedule and grad-scaler states, the RNG states (Python,
NumPy, torch CPU and every CUDA device), the epoch, the position inside it (optimiser steps and batches done)
and the training history. It is written to a temporary file in the same directory, flushed to disk and renamed
into place, then ``DIR/checkpoints/last_checkpoint`` (a one-line text pointer, as mmengine keeps) is replaced
the same way: a kill at any moment leaves the previous checkpoint and pointer intact. Only the ``keep_last``
newest are kept; the best by validation top-1 is kept apart as ``best.pt`` with ``best.json`` saying which
epoch/step and score it is.
"""

from __future__ import annotations

import json
import os
import random
import re
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..atomic import atomic_copy, atomic_write, atomic_write_text, remove_stale_temporaries
from ..errors import TrainingStateError

__all__ = [
    "atomic_torch_save",
    "capture_rng_state",
    "restore_rng_state",
    "CheckpointManager",
    "load_training_state",
    "find_resume_checkpoint",
    "TrainingStateError",
]

_NAME = re.compile(r"^epoch_(\d+)_step_(\d+)\.pt$")


def atomic_torch_save(obj: Any, path: str | os.PathLike) -> Path:
    return atomic_write(path, lambda tmp: torch.save(obj, tmp))


# ------------------------------------------------------------------------------------------------ RNG states


def capture_rng_state() -> dict[str, Any]:
    """Python, NumPy (global), torch CPU and all CUDA generators, as weights-only-loadable objects."""
    # legacy=True is NumPy's default; spelled out because its stubs give the no-argument call the dict overload
    np_state = np.random.get_state(legacy=True)
    assert isinstance(np_state, tuple)  # the global RandomState is an MT19937: legacy form is the 5-tuple
    state: dict[str, Any] = {
        "python": list(random.getstate()[1]) + [random.getstate()[0], random.getstate()[2]],
        "numpy": {
            "name": np_state[0],
            "keys": torch.from_numpy(np_state[1].astype(np.int64)),
            "pos": int(np_state[2]),
            "has_gauss": int(np_state[3]),
            "cached_gaussian": float(np_state[4]),
        },
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: dict[str, Any]) -> None:
    py = state["python"]
    random.setstate((py[-2], tuple(int(x) for x in py[:-2]), py[-1]))
    n = state["numpy"]
    np.random.set_state(
        (n["name"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached_gaussian"])
    )
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        cuda = state["cuda"]
        if len(cuda) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(cuda)


# --------------------------------------------------------------------------------------------- checkpoints


def load_training_state(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a training checkpoint (never unpickles code); a damaged file raises :class:`TrainingStateError`."""
    path = Path(path)
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except FileNotFoundError:
        raise TrainingStateError(f"{path}: no such training checkpoint") from None
    except Exception as e:  # noqa: BLE001 - truncated, foreign or malicious files
        raise TrainingStateError(
            f"{path}: not a readable training checkpoint ({type(e).__name__}: "
            f"{str(e).splitlines()[0] if str(e) else ''})"
        ) from None
    if not isinstance(state, dict) or "model" not in state or "epoch" not in state:
        raise TrainingStateError(f"{path}: not a uniformerv2 training checkpoint (no model/epoch entries)")
    return state


def _sort_key(p: Path) -> tuple[int, int]:
    m = _NAME.match(p.name)
    return (int(m.group(1)), int(m.group(2))) if m else (-1, -1)


def find_resume_checkpoint(work_dir: str | os.PathLike) -> Path | None:
    """The checkpoint to resume from: the ``last_checkpoint`` pointer if it loads, else the newest that does."""
    ckpt_dir = Path(work_dir) / "checkpoints"
    candidates: list[Path] = []
    pointer = ckpt_dir / "last_checkpoint"
    if pointer.is_file():
        target = pointer.read_text().strip()
        if target:
            p = Path(target)
            candidates.append(p if p.is_absolute() else ckpt_dir / p)
    candidates += sorted((p for p in ckpt_dir.glob("epoch_*_step_*.pt")), key=_sort_key, reverse=True)
    for p in candidates:
        if not p.is_file():
            continue
        try:
            load_training_state(p)
        except TrainingStateError:
            continue
        return p
    return None


class CheckpointManager:
    """Writes training checkpoints into ``work_dir/checkpoints``, keeps the last ``keep_last``, marks the best."""

    def __init__(self, work_dir: str | os.PathLike, keep_last: int = 3) -> None:
        self.dir = Path(work_dir) / "checkpoints"
        self.keep_last = max(1, int(keep_last))

    @property
    def best_path(self) -> Path:
        return self.dir / "best.pt"

    def best_info(self) -> dict[str, Any] | None:
        p = self.dir / "best.json"
        if not p.is_file():
            return None
        try:
            return json.loads(p.read_text())
        except (OSError, json.JSONDecodeError):
            return None

    def list(self) -> list[Path]:
        return sorted(self.dir.glob("epoch_*_step_*.pt"), key=_sort_key)

    def save(
        self, state: dict[str, Any], *, epoch: int, step: int, top1: float | None = None, is_best: bool = False
    ) -> Path:
        """Write ``state`` as ``epoch_{epoch}_step_{step}.pt``, move the pointer, prune, and copy it to best."""
        self.dir.mkdir(parents=True, exist_ok=True)
        remove_stale_temporaries(self.dir)  # temporaries of a write that was killed
        path = self.dir / f"epoch_{epoch}_step_{step}.pt"
        atomic_torch_save(state, path)
        atomic_write_text(self.dir / "last_checkpoint", path.name + "\n")
        if is_best:
            atomic_copy(path, self.best_path)
            atomic_write_text(
                self.dir / "best.json",
                json.dumps({"checkpoint": path.name, "epoch": epoch, "step": step, "top1": top1}, indent=1) + "\n",
            )
        for old in self.list()[: -self.keep_last]:
            if old != path:
                old.unlink(missing_ok=True)
        return path
