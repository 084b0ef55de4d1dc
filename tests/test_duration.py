"""One duration vocabulary: a bare number and ``Ns`` are seconds, ``Nf`` is frames, everywhere."""

from __future__ import annotations

import math

import numpy as np
import pytest

from uniformerv2.duration import NOMINAL_FPS, Duration, parse_duration, video_duration
from uniformerv2.errors import UsageError


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2", Duration(2.0, "s")),
        ("2s", Duration(2.0, "s")),
        (" 2.5S ", Duration(2.5, "s")),
        ("500ms", Duration(0.5, "s")),
        (".5", Duration(0.5, "s")),
        ("16f", Duration(16.0, "f")),
        ("1e1", Duration(10.0, "s")),
        (3, Duration(3.0, "s")),
    ],
)
def test_a_bare_number_is_seconds_and_f_is_frames(text: str, expected: Duration) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", ["nan", "inf", "-1", "0", "0f", "", "s", "2 seconds", "2x", "1.5f", "-inf"])
def test_nonsense_is_a_usage_error_naming_the_field(text: str) -> None:
    with pytest.raises(UsageError, match="window="):
        parse_duration(text, name="window")


def test_zero_only_where_allowed() -> None:
    assert parse_duration("0", allow_zero=True) == Duration(0.0, "s")


def test_frames_refused_where_there_is_no_frame_rate() -> None:
    with pytest.raises(UsageError, match="frames is not accepted"):
        parse_duration("16f", frames=False)


def test_bounds_apply_to_seconds() -> None:
    with pytest.raises(UsageError, match="at most 10 s"):
        parse_duration("11", maximum=10)
    with pytest.raises(UsageError, match="at least 0.05 s"):
        parse_duration("0.01s", minimum=0.05)


def test_conversions_between_frames_and_seconds() -> None:
    assert Duration(16, "f").seconds(8.0) == 2.0
    assert Duration(2.0, "s").frames(8.0) == 16
    assert Duration(0.01, "s").frames(8.0) == 1  # at least one frame
    with pytest.raises(UsageError, match="frame rate"):
        Duration(16, "f").seconds(None)


def test_text_form_round_trips() -> None:
    for d in (Duration(2.0, "s"), Duration(0.25, "s"), Duration(16.0, "f")):
        assert parse_duration(str(d)) == d


def test_a_videos_length_counts_its_last_frame() -> None:
    assert video_duration(np.array([0.0, 0.5, 1.0])) == 1.5
    assert video_duration(np.array([10.0, 10.5, 11.0])) == 1.5  # from the first frame
    assert video_duration(np.array([0.0]), fps=4.0) == 0.25
    assert math.isclose(video_duration(np.array([0.0])), 1 / NOMINAL_FPS)
    assert video_duration(np.array([0.0]), fps=0.0) == 1 / NOMINAL_FPS
    assert video_duration(np.array([])) == 0.0
