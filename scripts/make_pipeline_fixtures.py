"""Make the golden fixtures of the test-time data pipeline (tests/fixtures/pipeline/) with the MMAction2 oracle.

Run with the oracle environment (MMAction2 1.2.0, decord, PyAV), from the repository root:

    /tmp/uniformerv2-ref/bin/python scripts/make_pipeline_fixtures.py [--videos]

--videos first (re)writes the small generated videos into tests/fixtures/pipeline/videos/ (PyAV encoders, fixed
content; only needed once: the committed files are the reference, since encoders need not be byte-reproducible).
Then, for every video (the shared ones in ../shared/data/videos/ and the generated ones) and every case below, it
runs /work/shared/ref/dump_pipeline.py (MMAction2's own transforms) and keeps, in a folder named after the
video file (test.mp4 -> test_mp4):

  <name>/<case>/result.json  dump_pipeline.py's result (frame indices, shapes, crop boxes, command, versions)
  <name>/<case>/pixels.npz   view_mean: float64 [views, 3] mean of every view and channel over all its pixels;
                              sample: uint8 frames.npy[:, :, :, 5::11, 5::11] (every 11th row and column)

frames.npy itself (14 MB for 4x3 views of 8 frames at 224) is not kept.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "tests" / "fixtures" / "pipeline"
SHARED = Path(os.environ.get("UNIFORMERV2_SHARED", ROOT.parent / "shared"))
if not (SHARED / "data").is_dir():
    SHARED = Path("/work/shared")
DUMP = SHARED / "ref" / "dump_pipeline.py"

SHARED_VIDEOS = ["demo.mp4", "test.mp4", "test.avi"]
# name: (codec, width, height, frames, encoder options)
GENERATED = {
    "odd_171x97.mp4": ("mpeg4", 171, 97, 37, {"qscale": "12"}),
    "portrait_90x160.mp4": ("libx264", 90, 160, 45, {"crf": "36", "preset": "medium", "threads": "1"}),
    "short_5f.mp4": ("libx264", 128, 96, 5, {"crf": "36", "threads": "1"}),
    "gop_160x120.mp4": (
        "libx264",
        160,
        120,
        150,
        {"crf": "38", "threads": "1", "x264-params": "keyint=12:min-keyint=12:open-gop=1:bframes=3"},
    ),
}
SAMPLE = (slice(None), slice(None), slice(None), slice(5, None, 11), slice(5, None, 11))

# case: (dump_pipeline.py arguments, keep pixels)
CASES = {
    "u8x4x3": (["--frames", "8", "--clips", "4", "--crop", "three", "--size", "224", "--decoder", "decord"], True),
    "u16x4x1": (["--frames", "16", "--clips", "4", "--crop", "center", "--size", "224", "--decoder", "decord"], True),
    "u8x4x3_pyav": (["--frames", "8", "--clips", "4", "--crop", "three", "--size", "224", "--decoder", "pyav"], True),
    "train_seed7": (
        [
            "--frames",
            "8",
            "--clips",
            "1",
            "--crop",
            "center",
            "--size",
            "224",
            "--decoder",
            "decord",
            "--train",
            "--seed",
            "7",
        ],
        False,
    ),
}


def make_video(path: Path, codec: str, width: int, height: int, frames: int, options: dict) -> None:
    """Smooth moving colour patterns (real-video-like chroma), deterministic."""
    import av

    yy, xx = np.mgrid[0:height, 0:width].astype(np.float64)
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=25, options=options)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for t in range(frames):
            r = 128 + 100 * np.sin(2 * np.pi * (xx / 37.0 + t / 20.0))
            g = 128 + 100 * np.cos(2 * np.pi * (yy / 23.0 - t / 15.0))
            cx, cy = (t * 3) % width, (t * 2) % height
            b = 60 + 160 * (((xx - cx) ** 2 + (yy - cy) ** 2) < (min(width, height) / 4) ** 2)
            img = np.clip(np.stack([r, g, b + 0.3 * xx], -1), 0, 255).astype(np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def fixture_name(video: Path) -> str:
    """The fixture folder of a video: its file name with '.' replaced by '_' (test.mp4 -> test_mp4)."""
    return video.name.replace(".", "_")


def rel(path: Path) -> str:
    return os.path.relpath(path, OUT)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--videos", action="store_true", help="(re)write the generated videos first")
    args = ap.parse_args()
    (OUT / "videos").mkdir(parents=True, exist_ok=True)
    if args.videos:
        for name, spec in GENERATED.items():
            make_video(OUT / "videos" / name, *spec)
            print(f"wrote videos/{name} ({(OUT / 'videos' / name).stat().st_size} bytes)")
    videos = [SHARED / "data" / "videos" / v for v in SHARED_VIDEOS] + [OUT / "videos" / v for v in GENERATED]
    for video in videos:
        for case, (extra, pixels) in CASES.items():
            with tempfile.TemporaryDirectory() as tmp:
                cmd = [sys.executable, str(DUMP), "--video", str(video), *extra, "--out", tmp]
                subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=OUT)
                dest = OUT / fixture_name(video) / case
                if dest.exists():
                    shutil.rmtree(dest)
                dest.mkdir(parents=True)
                result = json.loads(Path(tmp, "result.json").read_text())
                # keep the command portable: paths relative to tests/fixtures/pipeline
                result["command"] = " ".join(["dump_pipeline.py", "--video", rel(video), *extra])
                (dest / "result.json").write_text(json.dumps(result, indent=1) + "\n")
                if pixels:
                    frames = np.load(Path(tmp, "frames.npy"))
                    np.savez_compressed(
                        dest / "pixels.npz",
                        view_mean=frames.astype(np.float64).mean(axis=(2, 3, 4)),
                        sample=np.ascontiguousarray(frames[SAMPLE]),
                    )
                print(f"{video.name} {case}: total_frames={result['total_frames']} shape={result['output_shape']}")


if __name__ == "__main__":
    main()
