"""The command line, run as a user runs it (a real subprocess where the exit code and streams matter)."""

from __future__ import annotations

import json
import subprocess
import sys

import torch

import uniformerv2
from helpers import randomised, tiny_config
from uniformerv2.checkpoint import save_checkpoint
from uniformerv2.cli import main

B16 = "uniformerv2-base-p16-res224_clip_8xb32-u8_kinetics400-rgb"


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "uniformerv2.cli", *args], capture_output=True, text=True)


def test_list_shows_every_preset_matching_a_glob(capsys):
    assert main(["list", "*kinetics600*"]) == 0
    out = capsys.readouterr().out
    assert all(name in out for name in uniformerv2.list_models("*kinetics600*"))


def test_list_json_is_machine_readable(capsys):
    assert main(["list", "--json", "--source", "mmaction2"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert {r["name"] for r in rows} == set(uniformerv2.list_models(source="mmaction2"))


def test_info_reports_parameters_flops_protocol_and_url(capsys):
    assert main(["info", B16]) == 0
    out = capsys.readouterr().out
    preset = uniformerv2.get_preset(B16)
    assert f"{uniformerv2.model_info(B16)['params']:,}" in out
    assert "4 clips x 3 crops" in out and preset.url in out and "multiply-adds" in out


def test_unknown_model_is_one_line_on_stderr_without_traceback():
    proc = run("info", "no-such-model")
    assert proc.returncode == 1
    assert proc.stderr.strip().count("\n") == 0 and "no-such-model" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_convert_turns_an_mmaction2_checkpoint_into_a_self_describing_safetensors(tmp_path):
    model = randomised(uniformerv2.UniFormerV2(tiny_config()))
    src = save_checkpoint(model, tmp_path / "m.pth", fmt="mmaction2")
    overrides = [f"{k}={v}" for k, v in tiny_config().to_dict().items() if k != "num_classes"]
    proc = run("convert", str(src), str(tmp_path / "m.safetensors"), "--model", B16, "--set", *overrides)
    assert proc.returncode == 0, proc.stderr
    loaded = uniformerv2.create_model(checkpoint=tmp_path / "m.safetensors")
    video = torch.randn(1, 3, 4, 32, 32)
    with torch.no_grad():
        assert torch.equal(loaded(video), model.eval()(video))


def test_convert_of_a_corrupt_file_names_it(tmp_path):
    (tmp_path / "bad.pth").write_bytes(b"\x80\x02garbage")
    proc = run("convert", str(tmp_path / "bad.pth"), str(tmp_path / "out.safetensors"), "--model", B16)
    assert proc.returncode == 1 and "bad.pth" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "out.safetensors").exists()


def test_every_option_has_help_and_every_command_shows_examples():
    import argparse

    from uniformerv2.cli import build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    for name, command in sub.choices.items():
        undocumented = [
            a.option_strings or a.dest
            for a in command._actions
            if not isinstance(a, argparse._HelpAction) and not a.help
        ]
        assert undocumented == [], name
        examples = command.epilog.split("examples:\n", 1)[1].splitlines()
        assert 2 <= len(examples) <= 3 and all(e.strip().startswith(("uniformerv2 ", "torchrun ")) for e in examples)


def test_old_spellings_of_options_still_work():
    from uniformerv2.cli import build_parser

    args = build_parser().parse_args(["test", "--num-workers", "3", "--class-names", "k400", "--model", "m"])
    assert args.workers == 3 and args.labels == "k400"
    args = build_parser().parse_args(["train", "--clip-len", "16", "--amp", "bf16", "--num-workers", "1"])
    assert (args.frames, args.dtype, args.workers) == (16, "bf16", 1)
    for command in ("timeline", "explain"):  # --top is now --top-k
        assert build_parser().parse_args([command, "v.mp4", "--model", "m", "--top", "3"]).top_k == 3
        assert build_parser().parse_args([command, "v.mp4", "--model", "m", "--top-k", "3"]).top_k == 3


def test_reference_commands_run_float32_unless_asked_and_interactive_ones_auto():
    from uniformerv2.cli import build_parser

    parser = build_parser()
    reference = {"test": ["m", "--ann-file", "a.txt"], "extract": ["v.mp4", "--out-dir", "o"]}
    interactive = {"predict": ["v.mp4"], "timeline": ["v.mp4"], "live": ["0"], "serve": []}
    for command, args in reference.items():
        assert parser.parse_args([command, *args]).dtype == "float32", command
        assert parser.parse_args([command, *args, "--dtype", "auto"]).dtype == "auto", command
    for command, args in interactive.items():
        assert parser.parse_args([command, *args]).dtype == "auto", command


def test_a_device_this_machine_lacks_is_a_usage_error_before_anything_is_built(capsys):
    import pytest

    from uniformerv2.cli import build_parser

    parser = build_parser()
    commands = {
        "predict": ["v.mp4"],
        "timeline": ["v.mp4"],
        "live": ["0"],
        "serve": [],
        "explain": ["v.mp4"],
        "test": ["m", "--ann-file", "a.txt"],
        "extract": ["v.mp4", "--out-dir", "o"],
    }
    missing = f"cuda:{torch.cuda.device_count()}"  # one past the last GPU, or the first where there is none
    for command, args in commands.items():
        for bad, says in (("banana", "is not a device name"), (missing, "is not on this machine")):
            with pytest.raises(SystemExit) as exit_info:
                parser.parse_args([command, *args, "--device", bad])
            err = capsys.readouterr().err
            assert exit_info.value.code == 2 and says in err and "this machine has: cpu" in err, (command, err)
        assert parser.parse_args([command, *args, "--device", "cpu"]).device == "cpu"
