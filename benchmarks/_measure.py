"""Measurement helpers shared by the benchmark workers, ours and the reference's (stdlib and torch only, so they
run in the oracle environment's Python and on a GPU machine alike)."""

import json
import sys
import time
from collections.abc import Callable

import torch


def memory_mib(field: str) -> float:
    """VmRSS (resident now) or VmHWM (peak resident since the last reset_peak) of this process, in MiB."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    raise KeyError(field)


def reset_peak(device: torch.device) -> None:
    """Start the peak afresh: VmHWM back to the current resident size (Linux >= 4.0), and CUDA's peak counter."""
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def sync(device: torch.device) -> None:
    """Wait for the device's queued work, so that wall-clock times cover it."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def peak_mib(device: torch.device) -> float:
    """The peak since reset_peak: GPU memory allocated (CUDA), else the process's peak resident set."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return memory_mib("VmHWM")


def serve(forward: Callable[[], torch.Tensor], device: torch.device) -> None:
    """The worker protocol: print a ready line, then answer one JSON line per command read from stdin.

    ``run``: time one ``forward()``; ``logits PATH``: save the last run's logits; ``quit``: report the peak memory
    since the ready line and return.
    """
    reset_peak(device)
    print(
        json.dumps(
            {
                "ready": True,
                "rss_mib": memory_mib("VmRSS"),
                "torch": torch.__version__,
                "threads": torch.get_num_threads(),
            }
        ),
        flush=True,
    )
    last = None
    for line in sys.stdin:
        cmd, *rest = line.split()
        if cmd == "run":
            sync(device)
            t, c = time.perf_counter(), time.process_time()
            last = forward()
            sync(device)
            print(json.dumps({"wall_s": time.perf_counter() - t, "cpu_s": time.process_time() - c}), flush=True)
        elif cmd == "logits":
            torch.save(last.float().cpu(), rest[0])
            print(json.dumps({"saved": rest[0]}), flush=True)
        elif cmd == "quit":
            print(json.dumps({"peak_mib": peak_mib(device)}), flush=True)
            return


def cpu_description() -> str:
    """The CPU's model name and what decides its speed here: AVX-512, native bf16 (AVX512_BF16, AMX)."""
    import platform

    model, flags = platform.processor() or "unknown CPU", set()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name") and model == (platform.processor() or "unknown CPU"):
                    model = line.split(":", 1)[1].strip()
                elif line.startswith(("flags", "Features")) and not flags:
                    flags = set(line.split(":", 1)[1].split())
    except OSError:
        pass
    named = [
        name
        for flag, name in (("avx512f", "AVX-512"), ("avx512_bf16", "AVX512_BF16"), ("amx_bf16", "AMX"))
        if flag in flags
    ]
    return f"{model} ({', '.join(named) or 'no AVX-512, no native bf16'})"
