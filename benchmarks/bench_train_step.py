"""Benchmark one training step of UniFormerV2-B/16, 8 frames at 224x224, with the recipe's optimiser.

Forward, cross-entropy, backward, gradient clipping at norm 20 and an AdamW step (no weight decay on norms and
biases), exactly as :class:`uniformerv2.engine.train.Trainer` does it, on random clips (no data loading).
Reports clips per second and peak memory (CUDA: ``torch.cuda.max_memory_allocated``; CPU: the process's peak RSS).

    python benchmarks/bench_train_step.py                              # CUDA if available, else CPU
    python benchmarks/bench_train_step.py --device cuda --batch 16 --amp bf16 --grad-checkpoint 6
    python benchmarks/bench_train_step.py --device cpu --batch 2 --steps 3 --warmup 1 --json
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time

import torch
import torch.nn.functional as F

from uniformerv2.engine.config import TrainConfig
from uniformerv2.engine.optim import build_optimizer
from uniformerv2.engine.train import build_model

AMP = {"none": None, "bf16": torch.bfloat16, "fp16": torch.float16}


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="uniformerv2-base-p16-res224_clip-kinetics710-pre_8xb32-u8_kinetics400-rgb")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--batch", type=int, default=None, help="clips per step (default: 8 on CUDA, 2 on CPU)")
    p.add_argument("--frames", type=int, default=8)
    p.add_argument("--size", type=int, default=224)
    p.add_argument("--amp", choices=list(AMP), default="none")
    p.add_argument("--grad-checkpoint", type=int, default=0, help="checkpoint the first N local blocks")
    p.add_argument("--frozen-backbone", action="store_true")
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    batch = args.batch or (8 if device.type == "cuda" else 2)
    cfg = TrainConfig(
        model=args.model,
        init="none",
        grad_checkpoint_blocks=args.grad_checkpoint,
        frozen_backbone=args.frozen_backbone,
        progress=False,
    )
    torch.manual_seed(0)
    model = build_model(cfg).to(device)
    opt = build_optimizer(model, 2e-6 * batch / 256)
    scaler = torch.amp.GradScaler(device.type, enabled=args.amp == "fp16")
    num_classes = model.cfg.num_classes
    x = torch.randn(batch, 3, args.frames, args.size, args.size, device=device)
    y = torch.randint(0, num_classes, (batch,), device=device)
    params = [q for g in opt.param_groups for q in g["params"]]

    def step() -> None:
        ctx = (
            torch.autocast(device.type, dtype=AMP[args.amp])
            if AMP[args.amp]
            else torch.autocast(device.type, enabled=False)
        )
        with ctx:
            logits = model(x)
        loss = F.cross_entropy(logits.float(), y)
        scaler.scale(loss).backward()
        scaler.unscale_(opt)
        torch.nn.utils.clip_grad_norm_(params, 20.0)
        scaler.step(opt)
        scaler.update()
        opt.zero_grad(set_to_none=True)

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    for _ in range(args.warmup):
        step()
    sync()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    times = []
    for _ in range(args.steps):
        t = time.perf_counter()
        step()
        sync()
        times.append(time.perf_counter() - t)
    times.sort()
    median = times[len(times) // 2]
    if device.type == "cuda":
        peak = torch.cuda.max_memory_allocated(device)
        peak_kind = "cuda max_memory_allocated"
        device_name = torch.cuda.get_device_name(device)
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        peak_kind = "process peak RSS"
        device_name = f"cpu ({torch.get_num_threads()} threads)"
    out = {
        "model": args.model,
        "device": device_name,
        "batch": batch,
        "frames": args.frames,
        "size": args.size,
        "amp": args.amp,
        "grad_checkpoint": args.grad_checkpoint,
        "frozen_backbone": args.frozen_backbone,
        "step_s_median": median,
        "step_s_min": times[0],
        "clips_per_s": batch / median,
        "peak_memory_gib": peak / 2**30,
        "peak_memory_kind": peak_kind,
        "torch": torch.__version__,
    }
    if args.json:
        print(json.dumps(out, indent=1))
    else:
        print(
            f"{args.model} on {device_name}: batch {batch} x {args.frames}x{args.size}^2, amp {args.amp}, "
            f"grad checkpoint {args.grad_checkpoint}"
        )
        print(
            f"  step {median * 1e3:.1f} ms (median of {args.steps}), {out['clips_per_s']:.2f} clips/s, "
            f"peak memory {out['peak_memory_gib']:.2f} GiB ({peak_kind})"
        )
    return out


if __name__ == "__main__":
    main(sys.argv[1:])
    sys.exit(0)
