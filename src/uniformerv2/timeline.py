"""Scanning a long video with sliding windows: scores over time, a plot, CSV/JSON, and an annotated copy."""
from __future__ import annotations

import argparse
import csv
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from .atomic import atomic_write_file, atomic_write_text
from .inference import VideoClassifier, add_speed_arguments, classifier_from_args

__all__ = ["Timeline", "scan", "plot_timeline", "write_timeline", "annotate_video", "add_timeline_command"]


@dataclass
class Timeline:
    """Window start/end times in seconds [W, 2] and the classifier's probabilities per window [W, C]."""

    video: str
    fps: float
    starts: np.ndarray
    ends: np.ndarray
    scores: np.ndarray
    class_names: list[str]

    def top1(self) -> list[tuple[str, float]]:
        idx = self.scores.argmax(1)
        return [(self.class_names[i], float(self.scores[w, i])) for w, i in enumerate(idx)]

    def label_at(self, t: float) -> tuple[str, float] | None:
        """Top class of the window whose centre is nearest to time ``t`` (seconds)."""
        if not len(self.starts):
            return None
        centres = (self.starts + self.ends) / 2
        w = int(np.abs(centres - t).argmin())
        i = int(self.scores[w].argmax())
        return self.class_names[i], float(self.scores[w, i])


def _video_fps(path: str) -> float:
    import av
    with av.open(path, metadata_errors="ignore") as container:
        stream = container.streams.video[0]
        rate = stream.average_rate or stream.guessed_rate or stream.base_rate
    return float(rate) if rate else 30.0


def window_indices(num_frames: int, fps: float, window_s: float, stride_s: float, clip_len: int
                   ) -> tuple[np.ndarray, np.ndarray]:
    """Start frame of every window and, per window, ``clip_len`` frame indices spread uniformly over it
    (the centre of each of ``clip_len`` equal segments, as test-mode ``UniformSample`` takes them)."""
    win = max(1, int(round(window_s * fps)))
    stride = max(1, int(round(stride_s * fps)))
    last_start = max(0, num_frames - win)
    starts = np.arange(0, last_start + 1, stride)
    if starts[-1] != last_start:  # cover the end of the video
        starts = np.append(starts, last_start)
    span = min(win, num_frames)
    offsets = ((np.arange(clip_len) + 0.5) * span / clip_len).astype(np.int64)
    return starts, np.clip(starts[:, None] + offsets[None, :], 0, num_frames - 1)


def scan(clf: VideoClassifier, video: str | os.PathLike, *, window_s: float = 2.0, stride_s: float = 1.0,
         windows_per_read: int = 16, progress: bool = True) -> Timeline:
    """Score every window of ``video`` with ``clf``'s crops (one clip per window)."""
    from tqdm.auto import tqdm

    from .data import open_video, views_from_frames
    path = str(video)
    p = clf.protocol
    fps = _video_fps(path)
    with open_video(path, clf.backend) as reader:
        num_frames = reader.num_frames
        starts, indices = window_indices(num_frames, fps, window_s, stride_s, p.frames)
        scores = []
        bar = tqdm(total=len(starts), desc="windows", unit="win", disable=not progress)
        for lo in range(0, len(starts), windows_per_read):
            chunk = indices[lo:lo + windows_per_read]
            unique, inverse = np.unique(chunk, return_inverse=True)
            frames = reader.read(unique)
            for w in range(len(chunk)):
                views = views_from_frames(frames, p.frames, 1, p.crops, p.size, sampling=p.sampling,
                                          inverse=inverse.reshape(chunk.shape)[w])
                scores.append(clf.scores_of_views(views).numpy())
                bar.update(1)
        bar.close()
    win = max(1, int(round(window_s * fps)))
    return Timeline(video=path, fps=fps, starts=starts / fps, ends=np.minimum(starts + win, num_frames) / fps,
                    scores=np.stack(scores), class_names=list(clf.class_names))


def _shown_classes(tl: Timeline, max_classes: int) -> list[int]:
    """Classes that are top-1 somewhere (by how often), then the highest-scoring others, up to ``max_classes``."""
    top = tl.scores.argmax(1)
    counts = np.bincount(top, minlength=tl.scores.shape[1])
    order = sorted(set(top.tolist()), key=lambda c: -counts[c])
    for c in np.argsort(-tl.scores.max(0)):
        if len(order) >= max_classes:
            break
        if int(c) not in order:
            order.append(int(c))
    return order[:max_classes]


def plot_timeline(tl: Timeline, path: str | os.PathLike, *, max_classes: int = 5) -> Path:
    """A PNG: probability of the leading classes over time, with the top-1 class as a band along the bottom."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    centres = (tl.starts + tl.ends) / 2
    shown = _shown_classes(tl, max_classes)
    fig, ax = plt.subplots(figsize=(10, 4), dpi=120)
    colors = plt.get_cmap("tab10")
    for k, c in enumerate(shown):
        ax.plot(centres, tl.scores[:, c], color=colors(k % 10), lw=2, label=tl.class_names[c])
    top = tl.scores.argmax(1)
    for w, c in enumerate(top):
        k = shown.index(int(c)) if int(c) in shown else None
        ax.axvspan(tl.starts[w], tl.ends[w], ymin=0, ymax=0.04, color=colors(k % 10) if k is not None else "0.5",
                   alpha=0.6, lw=0)
    ax.set_xlim(0, float(tl.ends.max()) if len(tl.ends) else 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("time (s)")
    ax.set_ylabel("probability")
    ax.set_title(f"{Path(tl.video).name}: top classes over time (band: top-1 per window)")
    ax.legend(loc="upper right", fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    try:
        return atomic_write_file(path, lambda f: fig.savefig(f, format="png"), binary=True)
    finally:
        plt.close(fig)


def write_timeline(tl: Timeline, csv_path: str | os.PathLike | None, json_path: str | os.PathLike | None, *,
                   top_k: int = 5) -> None:
    """CSV (one row per window: start, end, top-k labels and probabilities) and/or JSON (the same, plus all scores)."""
    k = min(top_k, tl.scores.shape[1])
    order = np.argsort(-tl.scores, axis=1)[:, :k]
    rows = [{"start_s": round(float(s), 3), "end_s": round(float(e), 3),
             "top": [{"label": tl.class_names[c], "probability": float(tl.scores[w, c])} for c in order[w]]}
            for w, (s, e) in enumerate(zip(tl.starts, tl.ends))]
    def write_csv(f: Any) -> None:
        writer = csv.writer(f)
        writer.writerow(["start_s", "end_s"] + [x for i in range(1, k + 1) for x in (f"top{i}", f"prob{i}")])
        for r in rows:
            writer.writerow([r["start_s"], r["end_s"]] +
                            [x for t in r["top"] for x in (t["label"], f"{t['probability']:.6f}")])
    if csv_path:
        atomic_write_file(csv_path, write_csv, binary=False)
    if json_path:
        atomic_write_text(json_path, json.dumps({"video": tl.video, "fps": tl.fps, "class_names": tl.class_names,
                                                 "windows": rows, "scores": np.round(tl.scores, 6).tolist()},
                                                indent=1))


def _frames(path: str) -> Iterator[tuple[float, Any]]:
    import av
    with av.open(path, metadata_errors="ignore") as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        for frame in container.decode(stream):
            t = float(frame.pts * stream.time_base) if frame.pts is not None else None
            yield t, frame


def annotate_video(tl: Timeline, out_path: str | os.PathLike) -> Path:
    """Write a copy of the video with the running top-1 class and its probability drawn on every frame."""
    import av
    from PIL import ImageDraw, ImageFont

    from .data.decode import add_video_stream
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_path.with_name(f".{out_path.name}.tmp{out_path.suffix}")
    font = ImageFont.load_default()
    with av.open(str(tmp), "w") as out:
        stream = None
        start = None
        for n, (t, frame) in enumerate(_frames(tl.video)):
            img = frame.to_image()
            if stream is None:
                stream = add_video_stream(out, tl.fps, img.width, img.height, crf=23)
                start = t or 0.0
            time_s = (t - start) if t is not None else n / tl.fps
            found = tl.label_at(time_s)
            if found:
                draw = ImageDraw.Draw(img)
                text = f"{found[0]} {found[1]:.0%}"
                box = draw.textbbox((4, 4), text, font=font)
                draw.rectangle((box[0] - 2, box[1] - 2, box[2] + 2, box[3] + 2), fill=(0, 0, 0))
                draw.text((4, 4), text, fill=(255, 255, 255), font=font)
            img = img.crop((0, 0, stream.width, stream.height))
            for packet in stream.encode(av.VideoFrame.from_image(img)):
                out.mux(packet)
        if stream is None:
            raise ValueError(f"{tl.video}: no frames to annotate")
        for packet in stream.encode():
            out.mux(packet)
    os.replace(tmp, out_path)
    return out_path


def _seconds(text: str) -> float:
    value = float(text[:-1] if text.endswith("s") else text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text!r}: must be a positive duration, e.g. 2s")
    return value


def _cmd_timeline(args: argparse.Namespace) -> int:
    clf = classifier_from_args(args, views=(1, args.crops))
    tl = scan(clf, args.video, window_s=args.window, stride_s=args.stride, progress=not args.no_progress)
    out_dir = Path(args.out_dir or Path(args.video).with_suffix("").name + "_timeline")
    stem = Path(args.video).stem
    png = plot_timeline(tl, out_dir / f"{stem}_timeline.png", max_classes=args.top)
    write_timeline(tl, out_dir / f"{stem}_timeline.csv", out_dir / f"{stem}_timeline.json", top_k=args.top)
    for (start, end), (label, prob) in zip(zip(tl.starts, tl.ends), tl.top1()):
        print(f"{start:8.2f}s - {end:8.2f}s  {label}  {prob:.1%}")
    print(f"\nwrote {png}\nwrote {out_dir / f'{stem}_timeline.csv'}\nwrote {out_dir / f'{stem}_timeline.json'}")
    if args.annotate:
        print(f"wrote {annotate_video(tl, args.annotate)}")
    return 0


def add_timeline_command(sub: Any) -> None:
    """Register ``uniformerv2 timeline``."""
    p = sub.add_parser("timeline", help="score sliding windows of a long video: plot, CSV/JSON, annotated copy")
    p.add_argument("video")
    p.add_argument("--model", help="preset name (published weights are downloaded unless --checkpoint is given)")
    p.add_argument("--checkpoint", help="weights: any supported format; ours (.safetensors) needs no --model")
    p.add_argument("--window", type=_seconds, default=2.0, help="window length, e.g. 2s (default 2s)")
    p.add_argument("--stride", type=_seconds, default=1.0, help="step between windows, e.g. 1s (default 1s)")
    p.add_argument("--frames", type=int, help="frames sampled per window (default: the preset's)")
    p.add_argument("--crops", type=int, choices=[1, 3], default=1, help="crops per window (default: centre only)")
    p.add_argument("--top", type=int, default=5, help="classes in the plot and the CSV (default 5)")
    p.add_argument("--labels", help="class names: a text file or k400, k600, k700, k710, mitv1")
    p.add_argument("--out-dir", help="where the PNG, CSV and JSON go (default: <video>_timeline/)")
    p.add_argument("--annotate", metavar="OUT.mp4", help="also write the video with the running top class drawn")
    p.add_argument("--device", default="cpu")
    add_speed_arguments(p)
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--set", nargs="*", metavar="KEY=VALUE", help="architecture overrides (MMAction2 names)")
    p.set_defaults(func=_cmd_timeline)
