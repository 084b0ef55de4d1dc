"""Benchmark ``uniformerv2 check`` against MMAction2 1.2.0's ``tools/analysis_tools/check_videos.py``, in one run.

    .venv/bin/python benchmarks/bench_check.py [--videos 36] [--workers 2] [--rounds 2] [--planted]

Both tools run as the user runs them, as subprocesses, on the same annotation list of real videos (MMAction2's three
test videos and re-encoded, resized and trimmed variants of them, made once into ``--work-dir``), with the same
number of worker processes, interleaved round by round; the best round of each counts. Throughput is videos per
second end to end (process start, imports and worker start included) and net of that start-up (a one-video run of
each tool is timed too). What each decodes differs: MMAction2's tool decodes 5 frames a video (first, last, 3 at
random) with decord; ours decodes the test protocol's 32 frames (8 x 4 clips) with PyAV, hashes the file (sha256)
and the frames (near duplicates), and checks labels.

``--planted`` also runs both tools on the test suite's planted-problem set (tests/test_check.py) and on a FIFO
named .mp4 (a file that hangs ``open()``), and prints what each finds.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _measure import cpu_description

ROOT = Path(__file__).resolve().parents[1]
TOOL = "lib/python3.11/site-packages/mmaction/.mim/tools/analysis_tools/check_videos.py"
CONFIG = """test_dataloader = dict(dataset=dict(type='VideoDataset', ann_file={ann!r}, data_prefix=dict(video={root!r}),
                                      pipeline=[], test_mode=True))
"""


def shared_videos() -> list[Path]:
    shared = ROOT.parent / "shared"
    if not (shared / "data").is_dir():
        shared = Path("/work/shared")
    return [shared / "data" / "videos" / v for v in ("demo.mp4", "test.mp4", "test.avi")]


def make_videos(work: Path, count: int) -> Path:
    """``count`` distinct videos: the three shared ones, then variants (every third one's frames, resized to 3/4,
    trimmed by k frames at the start, re-encoded as H.264); ``list.txt`` lists them (label 0)."""
    import av
    import numpy as np

    sources = shared_videos()
    work.mkdir(parents=True, exist_ok=True)
    names = []
    for k in range(count):
        src = sources[k % 3]
        if k < 3:
            name = src.name
            if not (work / name).exists():
                (work / name).write_bytes(src.read_bytes())
        else:
            name = f"v{k:03d}.mp4"
            if not (work / name).exists():
                with av.open(str(src)) as c:
                    frames = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)][k // 3 :]
                scale = 1.0 if k % 2 else 0.75
                h, w = frames[0].shape[:2]
                h, w = int(h * scale) // 2 * 2, int(w * scale) // 2 * 2
                tmp = work / f".{name}"
                with av.open(str(tmp), "w", format="mp4") as out:
                    stream = out.add_stream("libx264", rate=25)
                    stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
                    stream.options = {"crf": str(20 + k % 10), "preset": "ultrafast"}
                    for f in frames:
                        vf = av.VideoFrame.from_ndarray(np.ascontiguousarray(f), format="rgb24")
                        for packet in stream.encode(vf.reformat(width=w, height=h)):
                            out.mux(packet)
                    for packet in stream.encode():
                        out.mux(packet)
                os.replace(tmp, work / name)
        names.append(name)
    (work / "list.txt").write_text("".join(f"{n} 0\n" for n in names))
    (work / "one.txt").write_text(f"{names[0]} 0\n")
    return work


def run_ours(
    ann: Path, root: Path, workers: int, out: Path, *extra: str, timeout_s: float = 60
) -> tuple[float, int, dict]:
    cmd = [
        sys.executable,
        "-m",
        "uniformerv2.cli",
        "check",
        "--ann-file",
        str(ann),
        "--data-root",
        str(root),
        "--workers",
        str(workers),
        "--no-progress",
        "--out-dir",
        str(out),
        "--timeout",
        f"{timeout_s:g}",
        *extra,
    ]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    dt = time.perf_counter() - t0
    if proc.returncode not in (0, 1) or not (out / "check.json").is_file():
        raise SystemExit(f"uniformerv2 check failed ({proc.returncode}):\n{proc.stderr[-2000:]}")
    return dt, proc.returncode, json.loads((out / "check.json").read_text())


def run_ref(
    python: str, ann: Path, root: Path, workers: int, work: Path, limit_s: float = 600
) -> tuple[float | None, list[str], str]:
    """MMAction2's check_videos.py on a list: (seconds or None when it had to be killed, invalid paths, output)."""
    tool = Path(python).parents[1] / TOOL
    cfg = work / "ref_config.py"
    cfg.write_text(CONFIG.format(ann=str(ann), root=str(root)))
    invalid = work / "ref_invalid.txt"
    if invalid.exists():
        invalid.unlink()
    cmd = [
        python,
        str(tool),
        str(cfg),
        "--split",
        "test",
        "--decoder",
        "decord",
        "--nproc",
        str(workers),
        "--output-file",
        str(invalid),
    ]
    t0 = time.perf_counter()
    # its own process group: a hung pool is ended with its workers
    proc = subprocess.Popen(
        cmd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        errors="replace",
        cwd=work,
        start_new_session=True,
    )
    try:
        out, _ = proc.communicate(timeout=limit_s)
        dt: float | None = time.perf_counter() - t0
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate()
        dt = None
    if dt is not None and proc.returncode != 0:
        raise SystemExit(f"check_videos.py failed ({proc.returncode}):\n{out[-2000:]}")
    bad = invalid.read_text().split() if invalid.exists() else []
    return dt, bad, out


def throughput(args: argparse.Namespace, work: Path) -> list[str]:
    n = len((work / "list.txt").read_text().splitlines())
    best: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for rnd in range(args.rounds):
            for name in ("ref", "ours"):  # alternate, so both see the same load
                for ann in ("one.txt", "list.txt"):
                    if name == "ours":
                        dt, rc, report = run_ours(work / ann, work, args.workers, Path(tmp) / f"o{rnd}{ann}")
                    else:
                        dt, bad, _ = run_ref(args.ref_python, work / ann, work, args.workers, Path(tmp))
                        assert dt is not None and not bad, bad
                    key = f"{name}:{ann}"
                    best[key] = min(best.get(key, float("inf")), dt)
                    print(f"round {rnd + 1} {name:4s} {ann:8s} {dt:7.2f} s", flush=True)
    rows = []
    for name, label in (
        ("ours", "ours (`uniformerv2 check`, PyAV, 32 frames + hashes)"),
        ("ref", "MMAction2 `check_videos.py` (decord, 5 frames)"),
    ):
        full, one = best[f"{name}:list.txt"], best[f"{name}:one.txt"]
        rows.append((label, full, one, n / full, (n - 1) / max(full - one, 1e-9)))
    lines = [
        f"{n} videos ({', '.join(p.name for p in shared_videos())} and re-encoded/resized/trimmed variants, "
        f"~300 frames at 340x256 or 3/4 of that), {args.workers} worker processes each, best of {args.rounds} "
        "rounds:",
        "",
        "| tool | wall (s) | start-up, one video (s) | videos/s end to end | videos/s net of start-up |",
        "|---|---|---|---|---|",
    ]
    lines += [f"| {label} | {full:.2f} | {one:.2f} | {e2e:.2f} | {net:.2f} |" for label, full, one, e2e, net in rows]
    ours_net, ref_net = rows[0][4], rows[1][4]
    lines += ["", f"Net throughput ratio ours / MMAction2: {ours_net / ref_net:.2f}x."]
    return lines


def planted(args: argparse.Namespace) -> list[str]:
    sys.path.insert(0, str(ROOT / "tests"))
    from test_check import PLANTED, write_planted_dataset

    lines = [
        "",
        "Planted-problem set of tests/test_check.py: ours with `--ann-file train.txt --val-ann-file val.txt "
        "--num-classes 4`, MMAction2's tool on train.txt (it checks one split, decoding only):",
        "",
    ]
    with tempfile.TemporaryDirectory() as tmp:
        root = write_planted_dataset(Path(tmp) / "data")
        _, rc, report = run_ours(
            root / "train.txt",
            root,
            args.workers,
            Path(tmp) / "ours",
            "--val-ann-file",
            str(root / "val.txt"),
            "--num-classes",
            "4",
        )
        ours = {(os.path.relpath(p["path"], root) if "path" in p else "-", p["kind"]) for p in report["problems"]}
        dt, bad, _ = run_ref(args.ref_python, root / "train.txt", root, args.workers, Path(tmp))
        ref = {os.path.relpath(p, root) for p in bad}
        lines += ["| list | planted | kind | ours | MMAction2 check_videos.py |", "|---|---|---|---|---|"]
        for split, path, kind in sorted(PLANTED, key=lambda t: (t[0], t[1] or "", t[2])):
            found = (path or "-", kind) in ours
            lines.append(
                f"| {split} | {path or '(class 3)'} | {kind} | {'found' if found else 'missed'} | "
                f"{'listed as corrupt/missing' if path in ref else 'missed'} |"
            )
        extra = sorted(ref - {p for _, p, _ in PLANTED if p})
        ours_extra = sorted(ours - {(p or "-", k) for s_, p, k in PLANTED})
        usable = {os.path.relpath(v["path"], root) for v in report["videos"] if v["kind"] is None}
        decodable = sorted(ref & usable)
        lines += [
            "",
            f"Also listed: by MMAction2, {', '.join(extra) or 'nothing'}; by ours, "
            f"{', '.join(f'{p} ({k})' for p, k in ours_extra) or 'nothing'}.",
        ]
        if decodable:
            lines.append(
                f"MMAction2 lists as corrupt what PyAV decodes: {', '.join(decodable)} (its decord fails on "
                "them; a decord training pipeline would too)."
            )
        # a FIFO named .mp4: open() blocks until something writes to it
        os.mkfifo(root / "hang.mp4")
        (root / "hang.txt").write_text("hang.mp4 0\nc0/0.mp4 0\n")
        t0 = time.perf_counter()
        _, rc, report = run_ours(root / "hang.txt", root, args.workers, Path(tmp) / "hang", timeout_s=5)
        assert rc == 1
        ours_dt = time.perf_counter() - t0
        kinds = [p["kind"] for p in report["problems"]]
        dt, bad, _ = run_ref(args.ref_python, root / "hang.txt", root, args.workers, Path(tmp), limit_s=args.hang_s)
        lines += [
            "",
            f"A FIFO named hang.mp4 (a file whose open() never returns): ours finished in {ours_dt:.1f} s "
            f"with --timeout 5s and reported {kinds}; MMAction2's tool "
            + (
                f"finished in {dt:.1f} s listing {bad}."
                if dt is not None
                else f"had not finished after {args.hang_s:g} s and was killed."
            ),
        ]
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--videos", type=int, default=36, help="videos in the list (default 36)")
    ap.add_argument("--workers", type=int, default=2, help="worker processes of each tool (default 2)")
    ap.add_argument("--rounds", type=int, default=2, help="rounds; the best counts (default 2)")
    ap.add_argument(
        "--work-dir",
        default=os.path.join(tempfile.gettempdir(), "uniformerv2-bench-check"),
        help="where the videos are made, once",
    )
    ap.add_argument("--ref-python", default="/tmp/uniformerv2-ref/bin/python", help="the MMAction2 environment")
    ap.add_argument("--planted", action="store_true", help="also compare what both find on the planted set")
    ap.add_argument("--hang-s", type=float, default=60, help="how long MMAction2's tool may hang on a FIFO")
    args = ap.parse_args()
    work = make_videos(Path(args.work_dir), args.videos)
    lines = ["## Dataset check (`uniformerv2 check`)", ""] + throughput(args, work)
    if args.planted:
        lines += planted(args)
    import av

    machine = f"{os.cpu_count()} CPUs ({cpu_description()}), {platform.system()} {platform.machine()}"
    lines += [
        "",
        f"Machine: {machine}, shared "
        f"with other jobs while measured. PyAV {av.__version__}; MMAction2 1.2.0 in {args.ref_python}.",
        f"Command: `.venv/bin/python benchmarks/bench_check.py {' '.join(sys.argv[1:])}`",
    ]
    print()
    print("\n".join(lines))


if __name__ == "__main__":
    main()
