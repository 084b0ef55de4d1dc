"""One vocabulary: every duration a command, the HTTP API or the WebSocket takes reads ``2``, ``2s`` and ``16f`` the
same way (a bare number is seconds; frames where a frame rate is known, else one clear refusal)."""

from __future__ import annotations

import argparse

import pytest

from uniformerv2.cli import _common, build_parser
from uniformerv2.duration import Duration

#: (command, option) -> what ``16f`` gives: a length in frames, or refused (a clock time, no frame rate).
CLI_DURATIONS = {
    ("timeline", "--window"): "frames",
    ("timeline", "--stride"): "frames",
    ("live", "--window"): "frames",
    ("live", "--every"): "frames",
    ("live", "--duration"): "refused",
    ("live", "--stall"): "refused",
    ("serve", "--max-duration"): "refused",
    ("check", "--timeout"): "refused",
    ("extract", "--window"): "frames",
    ("extract", "--stride"): "frames",
}
#: Words that name a length of time in an option's destination.
TIME_WORDS = ("window", "stride", "every", "duration", "timeout", "stall")
#: Required arguments that let each command's parser run.
REQUIRED = {"timeline": ["v.mp4"], "live": ["0"], "extract": ["v.mp4", "--out-dir", "o"], "check": [], "serve": []}


def _subparsers() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


def _duration_options() -> dict[tuple[str, str], argparse.Action]:
    """Every option whose destination names a length of time, shown in ``--help`` (aliases left out)."""
    found = {}
    for name, sub in _subparsers().items():
        for action in sub._actions:
            if action.option_strings and action.help != argparse.SUPPRESS and not isinstance(action.const, bool):
                if any(word in action.dest for word in TIME_WORDS):
                    found[(name, action.option_strings[0])] = action
    return found


def test_the_table_lists_every_duration_option_of_every_command():
    assert set(_duration_options()) == set(CLI_DURATIONS)


def _parse(command: str, option: str, text: str) -> object:
    args = build_parser().parse_args([command, *REQUIRED[command], f"{option}={text}"])
    return getattr(args, _duration_options()[(command, option)].dest)


def _seconds(value: object) -> float:
    return value.seconds() if isinstance(value, Duration) else float(value)


@pytest.mark.parametrize(("command", "option"), sorted(CLI_DURATIONS))
def test_a_bare_number_and_s_are_the_same_seconds(command: str, option: str):
    assert _seconds(_parse(command, option, "2")) == _seconds(_parse(command, option, "2s")) == 2.0


@pytest.mark.parametrize(("command", "option"), sorted(CLI_DURATIONS))
def test_the_frame_form_is_frames_or_one_clear_refusal(command: str, option: str, capsys):
    if CLI_DURATIONS[(command, option)] == "frames":
        assert _parse(command, option, "16f") == Duration(16, "f")
        return
    with pytest.raises(SystemExit) as exit_info:
        _parse(command, option, "16f")
    assert exit_info.value.code == 2
    assert "a length in frames is not accepted here" in capsys.readouterr().err


@pytest.mark.parametrize(("command", "option"), sorted(CLI_DURATIONS))
def test_nonsense_durations_are_usage_errors(command: str, option: str, capsys):
    for text in ("nan", "inf", "-1", "2x"):
        with pytest.raises(SystemExit) as exit_info:
            _parse(command, option, text)
        assert exit_info.value.code == 2
        assert option in capsys.readouterr().err


def test_the_cli_types_are_the_library_parser():
    assert _common.duration("2") == _common.duration("2s") == Duration(2.0, "s")
    assert _common.seconds("2") == _common.seconds("2s") == 2.0


def test_the_service_reads_durations_as_the_command_line_does():
    pytest.importorskip("fastapi", reason="the serve extra is not installed: pip install 'uniformerv2[serve]'")
    from uniformerv2.serving.errors import ApiError
    from uniformerv2.serving.live_ws import LiveOptions
    from uniformerv2.serving.options import duration_option

    for text in ("2", "2s"):
        assert duration_option({"window": text}, "window", 1.0) == Duration(2.0, "s")
    assert duration_option({"window": "16f"}, "window", 1.0) == Duration(16, "f")
    assert LiveOptions.parse({"window": "2"}, 5) == LiveOptions.parse({"window": "2s"}, 5)
    with pytest.raises(ApiError) as refused:  # the page's camera sets the frame rate: seconds only
        LiveOptions.parse({"window": "16f"}, 5)
    assert refused.value.status == 400 and "frames is not accepted" in str(refused.value.message)
    with pytest.raises(ApiError) as bad:
        duration_option({"stride": "nan"}, "stride", 1.0)
    assert bad.value.status == 400 and "stride=" in str(bad.value.message)
