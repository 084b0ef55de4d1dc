"""Benchmark `uniformerv2 extract --mode video` against MMAction2 1.2.0's tools/misc/clip_feature_extraction.py.

    .venv/bin/python benchmarks/bench_extract.py [--arch b16] [--videos 3] [--views 4x3] [--rounds 2] [--overhead]

Both tools run as the commands a user types, each in a fresh process, on the same videos (the shared test videos,
linked under distinct names into a temporary folder and listed in one annotation file) and the same MMAction2
checkpoint: a randomised Recognizer3D written by the shared oracle `/work/shared/ref/dump.py` (``--ref-python``'s
environment). The runs are interleaved, ours then theirs, round by round. Throughput is videos per second of the
whole command (start-up and model loading included); ``--overhead`` also times each tool on one video, and reports
the marginal rate ``(N - 1) / (T_N - T_1)`` without the fixed costs.

Settings, the same for both: float32, ``--workers`` decoding processes (MMAction2's ``test_dataloader.num_workers``),
the config's test views (``--views``, default 4x3 of ``--frames`` at ``--size``). MMAction2 batches
``--ref-batch`` videos per forward (its config's ``test_dataloader.batch_size`` is 8); we batch ``--batch-views``
views. ``--arch tiny`` (or ``--set``) shrinks the network for a quick run on a small CPU; B/16 at 8x224 with 4x3
views costs about 12 x 1.5 s per video in float32 on a 2-core EPYC, for each tool.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _measure import cpu_description

ROOT = Path(__file__).resolve().parents[1]
PRESET = "uniformerv2-base-p16-res224_clip_8xb32-u8_kinetics400-rgb"
CONFIG = PRESET + ".py"
ARCHS = {
    "b16": {},
    "tiny": dict(
        width=64, layers=4, heads=2, n_dim=64, n_head=2, return_list=[2, 3], n_layers=2, mlp_dropout=[0.5, 0.5]
    ),
}


def literal(v: object) -> str:
    return str(v).replace(" ", "")


def timed(cmd: list[str], env: dict, log: Path) -> float:
    t0 = time.perf_counter()
    with open(log, "a") as f:
        subprocess.run(cmd, env=env, stdout=f, stderr=subprocess.STDOUT, check=True)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ref-python", default="/tmp/uniformerv2-ref/bin/python", help="the oracle environment")
    ap.add_argument("--dump-py", default="/work/shared/ref/dump.py")
    ap.add_argument("--video-dir", default=str(ROOT.parent / "shared" / "data" / "videos"))
    ap.add_argument("--videos", type=int, default=3, help="videos per run (the shared ones, repeated)")
    ap.add_argument("--arch", choices=sorted(ARCHS), default="b16")
    ap.add_argument("--set", nargs="*", default=[], help="more backbone overrides, key=value")
    ap.add_argument("--views", default="4x3", help="clips x crops")
    ap.add_argument("--frames", type=int, default=8)
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--batch-views", type=int, default=24)
    ap.add_argument("--ref-batch", type=int, default=8)
    ap.add_argument(
        "--ours-dtype",
        nargs="+",
        default=["float32", "auto"],
        help="our --dtype values to time (default: float32, as MMAction2, and auto)",
    )
    ap.add_argument("--overhead", action="store_true", help="also time one-video runs (start-up cost)")
    ap.add_argument("--keep", action="store_true", help="keep the temporary folder")
    args = ap.parse_args()
    if not os.path.isdir(args.video_dir):
        args.video_dir = "/work/shared/data/videos"

    arch = dict(ARCHS[args.arch], t_size=args.frames, input_resolution=args.size)
    for item in args.set:
        k, v = item.split("=", 1)
        arch[k] = json.loads(v) if v[:1] in "[0123456789-" else v
    clips, crops = (int(x) for x in args.views.lower().split("x"))
    work = Path(tempfile.mkdtemp(prefix="bench-extract-"))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")]))
    try:
        # the checkpoint: MMAction2's format, randomised by the shared oracle
        overrides = [f"backbone.{k}={literal(v)}" for k, v in arch.items()]
        if "n_dim" in arch:
            overrides.append(f"cls_head.in_channels={arch['n_dim']}")
        subprocess.run(
            [
                args.ref_python,
                args.dump_py,
                "--config",
                CONFIG,
                "--set",
                *overrides,
                "--frames",
                str(args.frames),
                "--size",
                str(args.size),
                "--out",
                str(work / "ckpt"),
            ],
            check=True,
            stdout=subprocess.DEVNULL,
        )
        ckpt = work / "ckpt" / "checkpoint.pth"
        # the videos, under distinct names
        shared = sorted(p for p in Path(args.video_dir).iterdir() if p.suffix in (".mp4", ".avi"))
        vids = work / "videos"
        vids.mkdir()
        names = []
        for i in range(args.videos):
            src = shared[i % len(shared)]
            name = f"v{i:03d}{src.suffix}"
            os.symlink(src, vids / name)
            names.append(name)
        lists = {}
        for n in sorted({args.videos, 1} if args.overhead else {args.videos}):
            lists[n] = work / f"list{n}.txt"
            lists[n].write_text("".join(f"{name}\n" for name in names[:n]))

        ours_set = [f"{k}={literal(v)}" for k, v in arch.items()]

        def ours(n: int, r: int, dtype: str) -> list[str]:
            return [
                sys.executable,
                "-m",
                "uniformerv2.cli",
                "extract",
                "--ann-file",
                str(lists[n]),
                "--data-root",
                str(vids),
                "--out-dir",
                str(work / f"ours{n}_{r}_{dtype}"),
                "--model",
                PRESET,
                "--checkpoint",
                str(ckpt),
                "--set",
                *ours_set,
                "--views",
                args.views,
                "--dtype",
                dtype,
                "--workers",
                str(args.workers),
                "--batch-views",
                str(args.batch_views),
                "--no-progress",
            ]

        dump_dir = str(Path(args.dump_py).parent)
        find_config = f"import sys; sys.path.insert(0, {dump_dir!r}); import dump; print(dump.config_path({CONFIG!r}))"
        config_path = subprocess.run(
            [args.ref_python, "-c", find_config], capture_output=True, text=True, check=True
        ).stdout.strip()
        import_tool = (
            "import mmaction, os; print(os.path.join(os.path.dirname(mmaction.__file__), '.mim', "
            "'tools', 'misc', 'clip_feature_extraction.py'))"
        )
        tool = subprocess.run(
            [args.ref_python, "-c", import_tool], capture_output=True, text=True, check=True
        ).stdout.strip()
        cfg_options = [f"model.backbone.{k}={literal(v)}" for k, v in arch.items()]
        cfg_options += [
            "model.backbone.clip_pretrained=False",
            f"test_dataloader.dataset.pipeline.1.clip_len={args.frames}",
            f"test_dataloader.dataset.pipeline.1.num_clips={clips}",
            f"test_dataloader.dataset.pipeline.3.scale=(-1,{args.size})",
            f"test_dataloader.dataset.pipeline.4.crop_size={args.size}",
            f"test_dataloader.num_workers={args.workers}",
            f"test_dataloader.persistent_workers={args.workers > 0}",
            f"test_dataloader.batch_size={args.ref_batch}",
        ]
        if crops == 1:
            cfg_options.append("test_dataloader.dataset.pipeline.4.type=CenterCrop")

        def theirs(n: int, r: int) -> list[str]:
            return [
                args.ref_python,
                tool,
                config_path,
                str(ckpt),
                str(work / f"theirs{n}_{r}"),
                "--video-list",
                str(lists[n]),
                "--video-root",
                str(vids),
                "--cfg-options",
                *cfg_options,
            ]

        log = work / "log.txt"
        runs = {f"ours --dtype {d}": (lambda n, r, d=d: ours(n, r, d)) for d in args.ours_dtype}
        runs["mmaction2"] = theirs
        times: dict[str, list[float]] = {k: [] for k in runs}
        once: dict[str, float] = {}
        for r in range(args.rounds):
            for key, make in runs.items():
                times[key].append(timed(make(args.videos, r), env, log))
            print(
                f"round {r + 1} ({args.videos} videos): " + ", ".join(f"{k} {v[-1]:.1f} s" for k, v in times.items()),
                flush=True,
            )
        if args.overhead:
            for key, make in runs.items():
                once[key] = timed(make(1, args.rounds), env, log)
        # the two tools' features agree (float32, same views)
        import pickle

        import numpy as np

        diffs = []
        for name in names:
            a = np.load(work / f"ours{args.videos}_0_{args.ours_dtype[0]}" / (Path(name).stem + ".npy"))
            with open(work / f"theirs{args.videos}_0" / (name + ".pkl"), "rb") as f:
                b = pickle.load(f)
            diffs.append(float(np.abs(a - np.asarray(b, dtype=np.float32)).max()))

        def marginal(key: str) -> float | None:
            extra = min(times[key]) - once[key]
            return (args.videos - 1) / extra if extra > 0 and args.videos > 1 else None

        report = {
            "cpu": cpu_description(),
            "cores": os.cpu_count(),
            "arch": args.arch,
            "overrides": arch,
            "views": args.views,
            "videos": args.videos,
            "rounds": args.rounds,
            "workers": args.workers,
            "seconds": times,
            "one_video_seconds": once,
            "max_abs_diff_float32": max(diffs),
            "videos_per_s": {k: args.videos / min(v) for k, v in times.items()},
        }
        if args.overhead:
            report["marginal_videos_per_s"] = {k: marginal(k) for k in times}
        print(json.dumps(report, indent=1))
        print(
            f"\n| command | videos/s (whole command, best of {args.rounds}) |"
            + (" marginal videos/s (start-up excluded) |" if args.overhead else "")
        )
        print("|---|---|" + ("---|" if args.overhead else ""))
        for k in times:
            label = (
                "MMAction2 clip_feature_extraction.py (float32)" if k == "mmaction2" else f"uniformerv2 extract {k[5:]}"
            )
            m = report.get("marginal_videos_per_s", {}).get(k)
            extra = (f" {m:.3f} |" if m else " n/a |") if args.overhead else ""
            print(f"| {label} | {report['videos_per_s'][k]:.3f} |{extra}")
        print(
            f"\n{args.arch} ({args.views} views of {args.frames}x{args.size}), {args.videos} videos, "
            f"{report['cpu']}, {os.cpu_count()} CPUs; features agree to {max(diffs):.1e}"
        )
    finally:
        if args.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
