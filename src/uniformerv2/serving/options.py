"""A request's options (query string, form fields, WebSocket query): whole numbers and durations, read as the
command line reads them; a bad one is a 400 that names it."""

from __future__ import annotations

from collections.abc import Mapping

from ..duration import Duration, parse_duration
from ..errors import UsageError
from .errors import ApiError

__all__ = ["first", "int_option", "duration_option"]


def first(options: Mapping[str, str], name: str) -> str | None:
    """An option's value, or None when it is missing or blank."""
    value = options.get(name)
    return None if value is None or value.strip() == "" else value.strip()


def int_option(options: Mapping[str, str], name: str, default: int, lo: int, hi: int) -> int:
    """A whole-number option within [lo, hi]; 400 otherwise."""
    text = first(options, name)
    if text is None:
        return default
    try:
        value = int(text)
    except ValueError:
        raise ApiError(400, f"{name}={text!r}: expected a whole number") from None
    if not lo <= value <= hi:
        raise ApiError(400, f"{name}={value}: must be between {lo} and {hi}")
    return value


def duration_option(
    options: Mapping[str, str],
    name: str,
    default: float,
    *,
    frames: bool = True,
    minimum: float | None = None,
    maximum: float | None = None,
) -> Duration:
    """A duration option as :func:`~uniformerv2.duration.parse_duration` reads it (``2``/``2s`` seconds, ``16f``
    frames where ``frames``); 400 with the parser's message otherwise."""
    text = first(options, name)
    try:
        return parse_duration(
            default if text is None else text, name=name, frames=frames, minimum=minimum, maximum=maximum
        )
    except UsageError as e:
        raise ApiError(400, str(e)) from None
