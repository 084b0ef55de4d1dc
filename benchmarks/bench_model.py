"""The network on CPU or GPU, side by side with MMAction2 1.2.0's recognizer: clips/s, ratio, GFLOP/s, peak memory.

    bash ../shared/ref/setup.sh                                  # the oracle environment, once
    .venv/bin/python benchmarks/bench_model.py                    # B/16 and L/14, 1 and 12 views, fp32 and bf16
    .venv/bin/python benchmarks/bench_model.py --models b16 --views 1 --dtypes fp32 --reps 9
    .venv/bin/python benchmarks/bench_model.py --models b16 --views 1 --compile --ref-compile  # both compiled
    .venv/bin/python benchmarks/bench_model.py --int8-agreement   # int8 vs fp32 top-1 on decoded test views

On a GPU machine without the oracle environment (the lent H100s have torch but no internet), carry MMAction2's
pure-Python packages (``bash benchmarks/pack_reference.sh`` here writes ``.ref-packages/``) and run there:

    PYTHONPATH=.ref-packages/site python3 benchmarks/bench_model.py --device cuda --models b16 --views 32 \
        --dtypes bf16 --ref-python python3 --shared .ref-packages

Each configuration (model, views, dtype) gets two fresh worker processes: MMAction2's ``Recognizer3D`` built from
its config by ``_ref_model.py`` in the oracle's Python (weights randomised from a seed, as ``shared/ref/dump.py``
does), and ours (``--worker``) loading that very checkpoint. After one warm-up forward each, the coordinator
asks them for forwards in turn (ref, ours, ours, ref, ...; never both at once), so machine load hits both
alike; it reports medians and the median of the per-round ratios. The logits of the two are compared once.
Peak memory is each worker's peak resident set (VmHWM) after the model was built, reset just before the
warm-up: weights plus the forward's working memory. The GEMM rate (a 1576x768 @ 768x3072 matmul, the MLP's
shape at 8x224) is measured in this process before and after the configurations. GFLOP/s use the nominal FLOPs
of the architecture (``uniformerv2.count_flops``, 2 per multiply-add) for both: the reference does all of them;
ours skips the global blocks' key/value projections at inference (``Attention.cross_absorbed``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from _measure import serve, sync

ROOT = Path(__file__).resolve().parents[1]
MODELS = {
    "b16": "uniformerv2-base-p16-res224_clip-kinetics710-pre_8xb32-u8_kinetics400-rgb",
    "l14": "uniformerv2-large-p14-res224_clip-kinetics710-pre_u8_kinetics400-rgb",
}
MEAN, STD = 114.75, 57.375


# ------------------------------------------------------------------------------------------------ our worker


def worker(args: argparse.Namespace) -> None:
    """Our model, same protocol as ``_ref_model.py``: ``run``, ``logits PATH`` (of the last run), ``quit`` on stdin."""
    import uniformerv2

    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    model = uniformerv2.create_model(args.name, checkpoint=args.checkpoint).eval().to(device)
    if args.int8:
        from uniformerv2.quantize import quantize_dynamic_int8

        model = quantize_dynamic_int8(model, inplace=True)
    if args.compile:
        from uniformerv2.precision import compile_for_inference

        forward_model = compile_for_inference(model)
    else:
        forward_model = model
    gen = torch.Generator().manual_seed(args.seed + 1)  # the reference worker's input
    x = torch.randn((args.views[0], 3, args.frames, args.size, args.size), generator=gen).to(device)

    def forward() -> torch.Tensor:
        with torch.no_grad(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=args.dtype == "bf16"):
            return forward_model(x)

    serve(forward, device)


# ------------------------------------------------------------------------------------------------ coordinator


class Worker:
    def __init__(self, cmd: list[str], log: Path) -> None:
        self.log = log
        with open(log, "w") as err:
            self.proc = subprocess.Popen(
                cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, stderr=err, cwd=ROOT
            )
        self.info = self._read()

    def _read(self) -> dict:
        while True:
            line = self.proc.stdout.readline()
            if not line:
                tail = self.log.read_text()[-2000:]
                raise RuntimeError(f"worker {self.proc.args[:3]} died (exit {self.proc.wait()}):\n{tail}")
            if line.startswith("{"):
                return json.loads(line)

    def ask(self, cmd: str) -> dict:
        self.proc.stdin.write(cmd + "\n")
        self.proc.stdin.flush()
        return self._read()

    def close(self) -> dict:
        out = self.ask("quit")
        self.proc.wait()
        return out


def gemm_rate(
    dtype: torch.dtype, device: str = "cpu", rows: int = 1576, size: int | None = None, reps: int = 7
) -> float:
    """GFLOP/s of a ``rows`` x 768 @ 768 x 3072 matmul (the MLP of B/16 at 8x224; ``rows`` = 1576 per view), or of
    a ``size``-cubed one (the practical peak of a GPU)."""
    m, k, n = (size, size, size) if size else (rows, 768, 3072)
    a = torch.randn(m, k, device=device).to(dtype)
    b = torch.randn(k, n, device=device).to(dtype)
    dev = torch.device(device)
    for _ in range(3 if dev.type == "cuda" else 1):
        torch.mm(a, b)
    ts = []
    for _ in range(reps):
        sync(dev)
        t = time.perf_counter()
        torch.mm(a, b)
        sync(dev)
        ts.append(time.perf_counter() - t)
    return 2 * m * k * n / statistics.median(ts) / 1e9


def run_config(
    args, key: str, views: int, dtype: str, reps: int, ckpt: Path, tmp: Path, extra: list[str], ref_extra: list[str]
) -> dict:
    import uniformerv2

    name = MODELS[key]
    preset = uniformerv2.get_preset(name)
    frames, size = preset.num_frames, preset.resolution
    common = [
        "--views",
        str(views),
        "--frames",
        str(frames),
        "--size",
        str(size),
        "--dtype",
        dtype,
        "--threads",
        str(args.threads),
        "--seed",
        str(args.seed),
        "--device",
        args.device,
    ]
    ref_cmd = (
        [args.ref_python, str(ROOT / "benchmarks" / "_ref_model.py"), "--config", f"{name}.py", "--shared", args.shared]
        + common
        + ref_extra
    )
    if not ckpt.exists():
        ref_cmd += ["--save-checkpoint", str(ckpt)]
    ref = Worker(ref_cmd, tmp / "ref.log")
    ours = Worker(
        [sys.executable, str(Path(__file__).resolve()), "--worker", "--name", name, "--checkpoint", str(ckpt)]
        + common
        + extra,
        tmp / "ours.log",
    )
    pair = [("ref", ref), ("ours", ours)]
    for _, w in pair:  # warm-up
        w.ask("run")
    times: dict[str, list[float]] = {"ref": [], "ours": []}
    for i in range(reps):
        for label, w in pair if i % 2 == 0 else pair[::-1]:
            times[label].append(w.ask("run")["wall_s"])
    ref.ask(f"logits {tmp / 'ref.pt'}")
    ours.ask(f"logits {tmp / 'ours.pt'}")
    diff = (torch.load(tmp / "ref.pt") - torch.load(tmp / "ours.pt")).abs().max().item()
    peaks = {label: w.close()["peak_mib"] for label, w in pair}
    flops = uniformerv2.count_flops(preset.config, frames, size) * views
    med = {k: statistics.median(v) for k, v in times.items()}
    ratio = statistics.median(r / o for r, o in zip(times["ref"], times["ours"]))
    variant = f"ours {' '.join(extra) or 'eager'}, MMAction2 {' '.join(ref_extra) or 'eager'}"
    return {
        "model": key,
        "views": views,
        "dtype": dtype,
        "variant": variant,
        "reps": reps,
        "ref_s": med["ref"],
        "ours_s": med["ours"],
        "ref_min_s": min(times["ref"]),
        "ours_min_s": min(times["ours"]),
        "ratio": ratio,
        "ref_clips_s": views / med["ref"],
        "ours_clips_s": views / med["ours"],
        "ref_gflops": flops / med["ref"] / 1e9,
        "ours_gflops": flops / med["ours"] / 1e9,
        "gflop_per_forward": flops / 1e9,
        "ref_peak_mib": peaks["ref"],
        "ours_peak_mib": peaks["ours"],
        "ref_ready_mib": ref.info["rss_mib"],
        "ours_ready_mib": ours.info["rss_mib"],
        "max_abs_logit_diff": diff,
        "times": times,
    }


def benchmark(args: argparse.Namespace) -> int:
    cuda = torch.device(args.device).type == "cuda"
    rows_per_gemm = 1576 * (max(args.views) if cuda else 1)  # a GPU is measured at the benchmark's batch

    def measure_rates() -> None:
        for name, dt in (("fp32", torch.float32), ("bf16", torch.bfloat16)):
            rates[name].append(gemm_rate(dt, args.device, rows_per_gemm))
        if cuda:
            rates["bf16_8192"].append(gemm_rate(torch.bfloat16, args.device, size=8192))

    rates: dict[str, list[float]] = {"fp32": [], "bf16": [], "bf16_8192": []}
    measure_rates()
    load = [os.getloadavg()]
    rows = []
    extra = ["--compile"] if args.compile else []
    ref_extra = ["--compile"] if args.ref_compile else []
    with tempfile.TemporaryDirectory() as tmp_dir:
        tmp = Path(tmp_dir)
        for key in args.models:
            ckpt = tmp / f"{key}.pth"
            for views in args.views:
                for dtype in args.dtypes:
                    reps = args.reps or (5 if views == 1 else 3) // (2 if key == "l14" else 1) or 1
                    row = run_config(args, key, views, dtype, reps, ckpt, tmp, extra, ref_extra)
                    rows.append(row)
                    print(json.dumps({k: v for k, v in row.items() if k != "times"}), flush=True)
    measure_rates()
    load.append(os.getloadavg())
    gemm = {k: statistics.mean(v) for k, v in rates.items() if v}
    print()
    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads; load average before {load[0][0]:.2f}, after {load[1][0]:.2f}"
    )
    if cuda:
        print(
            f"device: {torch.cuda.get_device_name(args.device)}; bf16 8192^3 GEMM rate {gemm['bf16_8192']:.0f} "
            "GFLOP/s (the practical peak the rows' bf16 GFLOP/s can be read against)"
        )
    print(
        f"GEMM rate ({rows_per_gemm}x768 @ 768x3072): fp32 {gemm['fp32']:.0f} GFLOP/s, bf16 {gemm['bf16']:.0f} "
        f"GFLOP/s (before/after: {rates['fp32'][0]:.0f}/{rates['fp32'][1]:.0f}, "
        f"{rates['bf16'][0]:.0f}/{rates['bf16'][1]:.0f})"
    )
    print()
    print(
        "| model | views | dtype | reps | MMAction2 s/forward | ours s/forward | ratio | MMAction2 clips/s | "
        "ours clips/s | MMAction2 GFLOP/s (% GEMM) | ours GFLOP/s (% GEMM) | peak MiB MMAction2 / ours | "
        "max logit diff |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        g = gemm[r["dtype"]]
        variant = "" if r["variant"] == "ours eager, MMAction2 eager" else f" ({r['variant']})"
        print(
            f"| {r['model'].upper()} 8x224{variant} | {r['views']} | "
            f"{r['dtype']} | {r['reps']} | {r['ref_s']:.3f} | {r['ours_s']:.3f} | **{r['ratio']:.2f}x** | "
            f"{r['ref_clips_s']:.2f} | {r['ours_clips_s']:.2f} | {r['ref_gflops']:.0f} "
            f"({100 * r['ref_gflops'] / g:.0f}%) | {r['ours_gflops']:.0f} ({100 * r['ours_gflops'] / g:.0f}%) | "
            f"{r['ref_peak_mib']:.0f} / {r['ours_peak_mib']:.0f} | {r['max_abs_logit_diff']:.1e} |"
        )
    if args.out:
        Path(args.out).write_text(json.dumps({"gemm": rates, "load": load, "rows": rows}, indent=1))
    return 0


# ------------------------------------------------------------------------------------------------ int8 agreement


def _randomise(model: torch.nn.Module, seed: int) -> None:
    """Every parameter and BatchNorm statistic from ``seed``, as ``shared/ref/dump.py`` does."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            noise = torch.randn(p.shape, generator=gen)
            is_norm = ("ln" in name or "norm" in name) and p.ndim == 1
            p.copy_(
                1.0 + 0.1 * noise
                if is_norm and name.endswith("weight")
                else 0.1 * noise
                if p.ndim == 1
                else 0.02 * noise
            )


def int8_agreement(args: argparse.Namespace) -> int:
    """Top-1 agreement of the int8 model with fp32 over the 4x3 test views of the shared videos."""
    import uniformerv2
    from uniformerv2 import Protocol
    from uniformerv2.data import read_test_views
    from uniformerv2.quantize import quantize_dynamic_int8

    if args.threads:
        torch.set_num_threads(args.threads)
    name = MODELS["b16"]
    model = uniformerv2.create_model(name).eval()
    _randomise(model, args.seed)
    qmodel = quantize_dynamic_int8(model)
    videos = sorted(Path(args.shared, "data", "videos").glob("*.mp4")) + sorted(
        Path(args.shared, "data", "videos").glob("*.avi")
    )
    agree = total = agree5 = 0
    worst = 0.0
    t_fp32, t_int8 = [], []
    for video in videos:
        views = (read_test_views(video, Protocol(8, 224, 4, 3)).float() - MEAN) / STD  # [12, 3, 8, 224, 224]
        for v in views.split(args.chunk):
            with torch.no_grad():
                t = time.perf_counter()
                a = model(v)
                t_fp32.append(time.perf_counter() - t)
                t = time.perf_counter()
                b = qmodel(v)
                t_int8.append(time.perf_counter() - t)
            agree += (a.argmax(-1) == b.argmax(-1)).sum().item()
            agree5 += sum(a_i.argmax().item() in b_i.topk(5).indices.tolist() for a_i, b_i in zip(a, b))
            total += len(v)
            worst = max(worst, (a - b).abs().max().item() / a.abs().max().item())
        print(f"{video.name}: {len(views)} views", flush=True)
    print(
        json.dumps(
            {
                "model": name,
                "weights": f"random, seed {args.seed} (no published weights offline)",
                "views": total,
                "top1_agreement": agree / total,
                "fp32_top1_in_int8_top5": agree5 / total,
                "max_rel_logit_diff": worst,
                "fp32_s_per_view": sum(t_fp32) / total,
                "int8_s_per_view": sum(t_int8) / total,
            }
        )
    )
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", nargs="*", default=["b16", "l14"], choices=sorted(MODELS))
    ap.add_argument("--views", nargs="*", type=int, default=[1, 12])
    ap.add_argument("--dtypes", nargs="*", default=["fp32", "bf16"], choices=["fp32", "bf16"])
    ap.add_argument(
        "--reps",
        type=int,
        default=0,
        help="timed rounds per configuration (default 5 / 3 for 12 views, halved for L/14)",
    )
    ap.add_argument("--threads", type=int, default=0, help="torch threads in every worker (default: torch's)")
    ap.add_argument(
        "--compile",
        action="store_true",
        help="ours under torch.compile (inductor, freezing: uniformerv2.compile_for_inference)",
    )
    ap.add_argument(
        "--ref-compile", action="store_true", help="MMAction2's recognizer under torch.compile with the same options"
    )
    ap.add_argument(
        "--device",
        default="cpu",
        help="cpu or cuda[:N]: where both networks run (CUDA: times are synchronised, peak memory is max allocated)",
    )
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--ref-python", default=os.environ.get("UNIFORMERV2_REF_PYTHON", "/tmp/uniformerv2-ref/bin/python"))
    ap.add_argument("--shared", default=str(ROOT.parent / "shared"))
    ap.add_argument("--out", help="write every measurement as JSON here")
    ap.add_argument("--int8-agreement", action="store_true")
    ap.add_argument("--chunk", type=int, default=4, help="views per forward in --int8-agreement")
    # worker mode (internal)
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--name", help=argparse.SUPPRESS)
    ap.add_argument("--checkpoint", help=argparse.SUPPRESS)
    ap.add_argument("--frames", type=int, default=8, help=argparse.SUPPRESS)
    ap.add_argument("--size", type=int, default=224, help=argparse.SUPPRESS)
    ap.add_argument("--dtype", default="fp32", help=argparse.SUPPRESS)
    ap.add_argument("--int8", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        worker(args)
        return 0
    if args.int8_agreement:
        return int8_agreement(args)
    return benchmark(args)


if __name__ == "__main__":
    sys.exit(main())
