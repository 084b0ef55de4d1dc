"""The errors uniformerv2 raises on purpose: every one is a :class:`UniFormerV2Error`.

The command line prints these as one line (``uniformerv2 CMD: error: ...``) and exits 1; anything else that
escapes is a bug and is reported as one. Each class also derives from the built-in exception that fits its
meaning (``ValueError``, ``FileNotFoundError``, ...), so ``except ValueError`` in user code keeps working.
"""

from __future__ import annotations

__all__ = [
    "UniFormerV2Error",
    "UsageError",
    "ConfigError",
    "UnknownModelError",
    "CheckpointError",
    "CheckpointNotFoundError",
    "HubError",
    "DownloadError",
    "ChecksumError",
    "VideoDecodeError",
    "AnnotationError",
    "TrainingStateError",
    "OutputError",
]


class UniFormerV2Error(Exception):
    """Base class of every error uniformerv2 raises on purpose; its message says what is wrong and where."""


class UsageError(UniFormerV2Error, ValueError):
    """An argument or option that cannot be used as given."""


class ConfigError(UniFormerV2Error, ValueError):
    """An architecture or training configuration that cannot describe a valid run."""


class UnknownModelError(UniFormerV2Error, ValueError):
    """A preset name that is not in the zoo."""


class CheckpointError(UniFormerV2Error, ValueError):
    """A checkpoint that cannot be read or does not fit the model; the message names the file."""


class CheckpointNotFoundError(CheckpointError, FileNotFoundError):
    """A local checkpoint path that does not exist."""


class HubError(UniFormerV2Error, RuntimeError):
    """Base class of the errors raised while fetching a checkpoint."""


class DownloadError(HubError):
    """A checkpoint could not be fetched (network failure, HTTP error, unreadable source).

    ``url`` is what was asked for and ``cache_path`` where a copy put by hand is found, so a caller can say how to
    go on in its own terms (which option takes a local file).
    """

    def __init__(self, message: str, *, url: str | None = None, cache_path: object = None) -> None:
        super().__init__(message)
        self.url = url
        self.cache_path = cache_path


class ChecksumError(HubError):
    """A downloaded file's sha256 does not start with the prefix its name promises."""


class VideoDecodeError(UniFormerV2Error, RuntimeError):
    """A video that cannot be read; the message is ``"<path>: <reason>"``."""

    def __init__(self, path: object, reason: str) -> None:
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")

    def __reduce__(self) -> tuple[type[VideoDecodeError], tuple[str, str]]:  # DataLoader workers pickle exceptions
        return (type(self), (self.path, self.reason))


class AnnotationError(UniFormerV2Error, ValueError):
    """A malformed annotation list, class folder or label map; the message names the file (and line)."""


class TrainingStateError(UniFormerV2Error, ValueError):
    """A training checkpoint that cannot be used to resume."""


class OutputError(UniFormerV2Error, OSError):
    """An output file that could not be written (full disk, no permission); the message names the path."""
