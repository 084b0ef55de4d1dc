"""Precision: bf16 only where the hardware has it. Each test asserts what holds on the CPU it runs on, so the
suite passes on CPUs with AVX512_BF16/AMX and on AVX2-only ones."""

from __future__ import annotations

import platform
import warnings

import pytest
import torch

from uniformerv2.precision import native_bf16, resolve_dtype

NATIVE = native_bf16("cpu")


def _flags() -> set[str]:
    with open("/proc/cpuinfo") as f:
        return next((set(line.split(":", 1)[1].split()) for line in f if line.startswith(("flags", "Features"))), set())


@pytest.mark.skipif(platform.machine() != "x86_64", reason="the x86 CPU flags name native bf16")
def test_native_bf16_is_what_the_cpu_flags_say():
    assert NATIVE == bool(_flags() & {"avx512_bf16", "amx_bf16"})


def test_auto_is_bf16_exactly_where_it_is_native():
    assert resolve_dtype("auto", "cpu") == (torch.bfloat16 if NATIVE else None)


def test_asking_for_bf16_where_it_is_emulated_warns_and_nowhere_else():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert resolve_dtype("bfloat16", "cpu") is torch.bfloat16  # asked for, so given
    emulated = [w for w in caught if "emulated" in str(w.message)]
    assert len(emulated) == (0 if NATIVE else 1)


def test_predict_defaults_to_auto():
    from uniformerv2.cli import build_parser

    args = build_parser().parse_args(["predict", "v.mp4", "--model", "m"])
    assert args.dtype == "auto"
