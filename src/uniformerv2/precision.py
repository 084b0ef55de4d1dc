"""Numeric precision and compilation, for inference and training alike: one table of dtype names, autocast,
native-bf16 detection, and :func:`compile_for_inference`.

Our network keeps the residual stream, LayerNorms and softmax inputs in float32 under autocast (see ``model.py``),
so only the matrix products and convolutions run in the lower precision.
"""

from __future__ import annotations

import contextlib
import functools
import os
import platform
import shutil
import warnings
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any

import torch

from .errors import UsageError

__all__ = [
    "check_device",
    "available_devices",
    "DTYPE_NAMES",
    "autocast_dtype",
    "resolve_dtype",
    "native_bf16",
    "autocast",
    "inference_autocast",
    "compile_for_inference",
]

# Every spelling accepted for a precision, on the command line and in Python; None is plain float32.
DTYPE_NAMES: dict[str, torch.dtype | None] = {
    "float32": None,
    "fp32": None,
    "none": None,
    "no": None,
    "bfloat16": torch.bfloat16,
    "bf16": torch.bfloat16,
    "float16": torch.float16,
    "fp16": torch.float16,
}


@functools.cache
def _cpu_flags() -> frozenset[str]:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith(("flags", "Features")):
                    return frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    return frozenset()


def available_devices() -> list[str]:
    """The devices this machine has, as ``--device`` names them: ``cpu``, then ``cuda:N`` and ``mps`` where present."""
    names = ["cpu"]
    if torch.cuda.is_available():
        names += [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    if torch.backends.mps.is_available():
        names.append("mps")
    return names


def check_device(device: str | torch.device) -> torch.device:
    """``device`` checked against this machine before anything is built: a name torch does not know, or a GPU
    this machine does not have, is a :class:`~uniformerv2.errors.UsageError` that lists what it has."""
    here = f"this machine has: {', '.join(available_devices())}"
    try:
        checked = torch.device(device)
    except (RuntimeError, TypeError, ValueError):
        raise UsageError(f"device {str(device)!r} is not a device name: use cpu, cuda or cuda:N ({here})") from None
    if checked.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0 or (checked.index is not None and checked.index >= count):
            raise UsageError(f"device {str(device)!r} is not on this machine ({here})")
    elif checked.type == "mps" and not torch.backends.mps.is_available():
        raise UsageError(f"device {str(device)!r} is not on this machine ({here})")
    elif checked.type not in ("cpu", "cuda", "mps"):
        raise UsageError(f"device {str(device)!r}: only cpu, cuda and mps are supported ({here})")
    return checked


def native_bf16(device: str | torch.device = "cpu") -> bool:
    """Whether ``device`` runs bfloat16 matrix products in hardware.

    On x86 CPUs that takes AVX512_BF16 or AMX; without them oneDNN emulates bf16 and a bf16 GEMM runs about 100x
    slower than float32 (measured on an AVX2-only AMD EPYC: 0.9 against 124 GFLOP/s). On ARM it takes the BF16
    extension. On CUDA, what ``torch.cuda.is_bf16_supported`` says.
    """
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    if device.type != "cpu":
        return False
    cpu = getattr(torch, "cpu", None)
    probes = [getattr(cpu, name, None) for name in ("_is_avx512_bf16_supported", "_is_amx_tile_supported")]
    checks = [p for p in probes if callable(p)]
    if platform.machine().lower() in ("x86_64", "amd64") and len(checks) == len(probes):
        return any(p() for p in checks)
    flags = _cpu_flags()
    return bool(flags & {"avx512_bf16", "amx_bf16", "bf16"})


def autocast_dtype(dtype: str | torch.dtype | None) -> torch.dtype | None:
    """The autocast dtype for ``dtype`` (a name such as ``"bf16"``, or a torch dtype); None means plain float32.

    ``"auto"`` is resolved by :func:`resolve_dtype`, which knows the device.
    """
    if isinstance(dtype, str):
        key = dtype.lower()
        if key == "auto":
            return resolve_dtype("auto", "cpu")
        if key not in DTYPE_NAMES:
            raise UsageError(f"unknown dtype {dtype!r}; choose auto or one of {', '.join(DTYPE_NAMES)}")
        dtype = DTYPE_NAMES[key]
    if dtype is not None and dtype not in (torch.float32, torch.bfloat16, torch.float16):
        raise UsageError(f"unsupported dtype {dtype}; use float32, bfloat16 or float16")
    return None if dtype == torch.float32 else dtype


def resolve_dtype(dtype: str | torch.dtype | None, device: str | torch.device) -> torch.dtype | None:
    """:func:`autocast_dtype` on ``device``: ``"auto"`` is bfloat16 where the hardware has it and float32
    elsewhere; an explicit bfloat16 where it would be emulated is kept, with a warning that says how slow."""
    device = torch.device(device)
    if isinstance(dtype, str) and dtype.lower() == "auto":
        return torch.bfloat16 if native_bf16(device) else None
    resolved = autocast_dtype(dtype)
    if resolved == torch.bfloat16 and device.type == "cpu" and not native_bf16(device):
        warnings.warn(
            "bfloat16 was asked for on a CPU without native bf16 (no AVX512_BF16 or AMX): it is "
            "emulated and runs many times slower than float32; use --dtype auto or float32",
            RuntimeWarning,
            stacklevel=2,
        )
    return resolved


def autocast(device: str | torch.device, dtype: str | torch.dtype | None) -> AbstractContextManager[Any]:
    """``torch.autocast`` for ``dtype`` on ``device``'s type, or a no-op for float32."""
    dtype = autocast_dtype(dtype) if not isinstance(dtype, torch.dtype) else dtype
    if dtype is None or dtype == torch.float32:
        return contextlib.nullcontext()
    return torch.autocast(torch.device(device).type, dtype=dtype)


inference_autocast = autocast  # the name earlier releases exported


def _cpp_compiler_available() -> bool:
    """Whether inductor will find the C++ compiler it uses for CPU kernels ($CXX, else g++ / c++ / clang++)."""
    cxx = os.environ.get("CXX")
    candidates = [cxx] if cxx else ["g++", "c++", "clang++"]
    return any(shutil.which(c) for c in candidates)


def compile_for_inference(model: torch.nn.Module) -> Callable[..., torch.Tensor]:
    """``model`` under ``torch.compile`` for inference, compiled with inductor's freezing: the weights become
    constants, so their autocast casts are folded away and the linear layers run on prepacked oneDNN (CPU) weights.

    Returns a callable ``f(views) -> logits``. The first call for an input shape compiles (about 15-30 s for B/16 on
    2 CPU cores); later calls reuse it. Call it with autograd off (``torch.no_grad``/``torch.inference_mode``):
    freezing only applies there. Outputs equal the eager model's within float rounding; ``model`` is not copied
    and stays usable eagerly.
    """
    import torch._inductor.config as inductor_config

    on_cpu = all(p.device.type == "cpu" for p in model.parameters())
    if on_cpu and not _cpp_compiler_available():
        raise UsageError(
            "compiling for CPU needs a C++ compiler (inductor builds its kernels with one), and none "
            "was found: set CXX or put g++/clang++ on PATH, or run without --compile"
        )
    compiled = torch.compile(model.eval())

    def forward(*args: Any, **kwargs: Any) -> torch.Tensor:
        # inductor reads ``freezing`` when it compiles, i.e. inside the first call for each shape; torch.compile's
        # ``options={"freezing": True}`` does not reach that check in torch 2.14 (measured: nothing prepacked)
        with inductor_config.patch(freezing=True):
            out: torch.Tensor = compiled(*args, **kwargs)
        return out

    return forward
