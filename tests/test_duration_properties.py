"""Property tests of the duration parser: any text parses to a positive finite duration or is a usage error."""

from __future__ import annotations

import math

import pytest

from uniformerv2.duration import Duration, parse_duration
from uniformerv2.errors import UsageError

hypothesis = pytest.importorskip("hypothesis", reason="hypothesis is a test extra: pip install -e .[test]")
from hypothesis import strategies as st  # noqa: E402  (after the skip)


@hypothesis.given(st.text(max_size=12))
def test_any_text_parses_or_is_a_usage_error(text: str) -> None:
    try:
        d = parse_duration(text)
    except UsageError:
        return
    assert math.isfinite(d.value) and d.value > 0 and d.unit in ("s", "f")


@hypothesis.given(st.floats(min_value=1e-3, max_value=1e6, allow_nan=False), st.sampled_from(["", "s"]))
def test_seconds_parse_to_their_value(value: float, suffix: str) -> None:
    assert parse_duration(f"{value!r}{suffix}") == Duration(value, "s")
