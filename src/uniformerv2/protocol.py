"""The test protocol: which views of a video a model is scored on (no torch)."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .errors import UsageError

__all__ = ["Protocol", "SAMPLINGS", "parse_views"]

SAMPLINGS = ("mmaction2", "original")


@dataclass(frozen=True)
class Protocol:
    """Test-time views: ``clips`` x ``crops`` views of ``frames`` frames at ``size`` pixels, with ``sampling``
    'mmaction2' (MMAction2 1.2.0's test pipeline) or 'original' (the authors' SlowFast-based code)."""

    frames: int
    size: int
    clips: int = 4
    crops: int = 3
    sampling: str = "mmaction2"

    def __post_init__(self) -> None:
        for name in ("frames", "size", "clips"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise UsageError(f"{name} must be a positive integer, got {value!r}")
        if self.crops not in (1, 3):
            raise UsageError(f"crops must be 1 (centre crop) or 3 (three crops), got {self.crops!r}")
        if self.sampling not in SAMPLINGS:
            raise UsageError(f"unknown sampling {self.sampling!r}; choose one of {', '.join(SAMPLINGS)}")

    @property
    def views(self) -> int:
        return self.clips * self.crops

    def replace(self, **changes: Any) -> Protocol:
        """A copy with the given fields changed (``None`` values are ignored, so options can be passed through)."""
        return dataclasses.replace(self, **{k: v for k, v in changes.items() if v is not None})

    def describe(self) -> str:
        return (
            f"{self.clips} clips x {self.crops} crops of {self.frames} frames at {self.size}px, "
            f"{self.sampling} sampling"
        )

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Protocol:
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


def parse_views(text: str) -> tuple[int, int]:
    """'4x3' -> (4 clips, 3 crops)."""
    parts = str(text).lower().replace("*", "x").split("x")
    try:
        clips, crops = (int(p) for p in parts)
    except ValueError:
        raise UsageError(f"{text!r}: expected CLIPSxCROPS, e.g. 4x3") from None
    if clips < 1 or crops not in (1, 3):
        raise UsageError(f"{text!r}: need at least 1 clip, and 1 or 3 crops")
    return clips, crops
