"""Multi-view evaluation (MMAction2's test protocol) and the ``uniformerv2 test`` command.

Each video is decoded into ``num_clips x num_crops`` views (``uniformerv2.data.TestViewsDataset``); the views of
several videos are run through the model together, at most ``batch_views`` at a time, and each video's score is the
mean over its views of the softmax of the logits (MMAction2's ``average_clips='prob'``). Metrics are those of
MMAction2's ``AccMetric`` (:mod:`uniformerv2.engine.metrics`). A video that cannot be decoded is recorded in
``EvalResult.failures`` as ``(path, reason)`` and the evaluation goes on. Under ``torchrun`` every rank scores a
disjoint, unpadded share of the videos and every rank ends up with the whole result, in the input order.
"""
from __future__ import annotations

import argparse
import csv
import io
import json
import os
import pickle
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch

from ..atomic import atomic_write_file
from ..data import normalize
from ..inference import add_speed_arguments, autocast_dtype, compile_for_inference, inference_autocast
from . import distributed as D
from .metrics import compute_metrics, confusion_matrix, per_class_accuracy, top_confused_pairs

__all__ = [
    "EvalResult",
    "evaluate",
    "write_dump",
    "read_dump",
    "format_per_class_table",
    "write_per_class_csv",
    "write_confusion_png",
    "add_test_command",
    "run_test",
    "parse_views",
]

@dataclass
class EvalResult:
    """The outcome of :func:`evaluate`. Scored videos are in input order; ``indices`` are their input positions."""

    indices: list[int]
    paths: list[str]
    labels: list[int | None]
    scores: torch.Tensor  # float32 [scored videos, classes]: mean over views of softmax(logits)
    failures: list[tuple[str, str]]  # (path, reason), input order
    metrics: dict[str, float]  # AccMetric's top1, top5, mean1; empty without labels
    num_videos: int
    class_names: list[str] | None = None
    protocol: dict[str, Any] = field(default_factory=dict)

    @property
    def num_scored(self) -> int:
        return len(self.paths)

    @property
    def num_classes(self) -> int:
        return int(self.scores.shape[1]) if self.scores.ndim == 2 else 0

    @property
    def predictions(self) -> torch.Tensor:
        """argmax of the averaged scores (the first maximum), as MMAction2's ``pred_label``."""
        return self.scores.argmax(dim=1) if self.num_scored else torch.zeros(0, dtype=torch.long)

    @property
    def has_labels(self) -> bool:
        return self.num_scored > 0 and all(label is not None for label in self.labels)

    def class_name(self, c: int) -> str:
        if self.class_names is not None and 0 <= c < len(self.class_names):
            return self.class_names[c]
        return str(c)

    def per_class(self) -> list[dict[str, Any]]:
        """:func:`per_class_accuracy` rows with a ``name`` column."""
        rows = per_class_accuracy(self.scores.numpy(), np.asarray(self.labels, dtype=np.int64), self.num_classes)
        for row in rows:
            row["name"] = self.class_name(row["class"])
        return rows

    def confusion(self) -> np.ndarray:
        return confusion_matrix(self.predictions.numpy(), np.asarray(self.labels, dtype=np.int64), self.num_classes)


# ------------------------------------------------------------------------------------------------ evaluation

def _as_list(batch: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """DataLoader collate: keep the items (views of different videos are concatenated later, None kept)."""
    return batch


def evaluate(model: torch.nn.Module, samples: Sequence[Any], *, clip_len: int, num_clips: int, num_crops: int,
             size: int, batch_views: int | None = None, num_workers: int = 0,
             device: str | torch.device | None = None, dtype: str | torch.dtype | None = None,
             class_names: Sequence[str] | None = None, progress: bool = True, sampling: str = "mmaction2",
             backend: str = "pyav", topk: Sequence[int] = (1, 5), distributed: bool | None = None,
             compile: bool = False) -> EvalResult:
    """Score ``samples`` (``VideoSample(path, label)``) with the multi-view protocol; see the module docstring.

    ``batch_views``: at most this many views per forward pass (default: one video's views); videos are batched so
    that a forward is as full as possible. ``dtype``: None/'float32', or 'bfloat16'/'float16' for autocast.
    ``compile``: run the network through :func:`uniformerv2.inference.compile_for_inference`.
    ``distributed``: None = shard across ranks when a process group with several ranks is initialised.
    """
    from torch.utils.data import DataLoader
    from tqdm.auto import tqdm

    from ..data import TestViewsDataset

    samples = list(samples)
    views_per_video = num_clips * num_crops
    batch_views = int(batch_views or views_per_video)
    if batch_views < 1:
        raise ValueError(f"batch_views must be >= 1, got {batch_views}")
    dtype = autocast_dtype(dtype)
    device = torch.device(device) if device is not None else next(model.parameters()).device
    if distributed is None:
        distributed = torch.distributed.is_available() and torch.distributed.is_initialized() \
            and torch.distributed.get_world_size() > 1
    rank = D.get_rank() if distributed else 0
    mine = D.shard_indices(len(samples)) if distributed else list(range(len(samples)))

    dataset = TestViewsDataset([samples[i] for i in mine], clip_len, num_clips, num_crops, size,
                               backend=backend, sampling=sampling)
    loader = DataLoader(dataset, batch_size=max(1, batch_views // views_per_video), shuffle=False,
                        num_workers=num_workers, collate_fn=_as_list, pin_memory=device.type == "cuda")
    model = model.eval().to(device)
    forward = compile_for_inference(model) if compile else model
    autocast = inference_autocast(device, dtype)  # re-entered for every forward

    records: list[tuple[int, str, int | None, np.ndarray]] = []
    failures: list[tuple[int, str, str]] = []
    bar = tqdm(total=len(dataset), unit="video", disable=not progress or rank != 0, dynamic_ncols=True,
               desc="test" + (f" (rank 0 of {D.get_world_size()})" if distributed else ""), file=sys.stderr)
    with torch.inference_mode(), bar:
        for batch in loader:
            good = []
            for item in batch:
                index = mine[int(item["index"])]
                if item.get("views") is None:
                    path = str(item["path"])
                    reason = str(item.get("error") or "could not be decoded")
                    if reason.startswith(path + ": "):  # the path is printed beside the reason anyway
                        reason = reason[len(path) + 2:]
                    failures.append((index, path, reason))
                else:
                    good.append((index, item))
            if good:
                views = torch.cat([item["views"] for _, item in good])
                logits = []
                for start in range(0, views.shape[0], batch_views):
                    x = normalize(views[start:start + batch_views].to(device, non_blocking=True))  # uint8 on the device
                    with autocast:
                        out = forward(x)
                    logits.append(out.float())
                probs = torch.cat(logits).softmax(dim=1)
                counts = [int(item["views"].shape[0]) for _, item in good]
                for (index, item), p in zip(good, probs.split(counts)):
                    label = item.get("label")
                    records.append((index, str(item["path"]), None if label is None else int(label),
                                    p.mean(dim=0).cpu().numpy()))
            bar.update(len(batch))
            if failures:
                bar.set_postfix(failed=len(failures), refresh=False)

    if distributed:
        parts = D.all_gather_objects((records, failures))
        records = [r for part in parts for r in part[0]]
        failures = [f for part in parts for f in part[1]]
    records.sort(key=lambda r: r[0])
    failures.sort(key=lambda f: f[0])
    seen = [r[0] for r in records] + [f[0] for f in failures]
    if sorted(seen) != list(range(len(samples))):
        raise RuntimeError("internal error: the videos were not each scored exactly once")

    num_classes = int(getattr(getattr(model, "cfg", None), "num_classes", 0) or 0)
    if records:
        scores = torch.from_numpy(np.stack([r[3] for r in records])).float()
    else:
        scores = torch.zeros(0, num_classes)
    labels = [r[2] for r in records]
    metrics: dict[str, float] = {}
    if records and all(label is not None for label in labels):
        metrics = compute_metrics(scores.numpy(), np.asarray(labels, dtype=np.int64), topk)
    return EvalResult(
        indices=[r[0] for r in records], paths=[r[1] for r in records], labels=labels, scores=scores,
        failures=[(f[1], f[2]) for f in failures], metrics=metrics, num_videos=len(samples),
        class_names=list(class_names) if class_names is not None else None,
        protocol=dict(clip_len=clip_len, num_clips=num_clips, num_crops=num_crops, size=size, sampling=sampling,
                      average_clips="prob"),
    )


# ------------------------------------------------------------------------------------------------ outputs

def _mmaction2_records(result: EvalResult) -> list[dict[str, Any]]:
    """One dict per scored video, as MMAction2 1.2.0's ``tools/test.py --dump`` writes (``ActionDataSample.to_dict``
    through ``DumpResults``, pickled by ``mmengine.dump`` with protocol 2): ``img_shape`` (crop, a tuple),
    ``num_classes`` (int), ``pred_label`` (int64 [1]), ``gt_label`` (int64 [1], left out for unlabelled videos),
    ``pred_score`` (float32 [classes], the softmax averaged over views); plus ``filename``, the video's path."""
    out = []
    preds = result.predictions
    size = int(result.protocol.get("size", 0))
    for i, path in enumerate(result.paths):
        rec: dict[str, Any] = {"img_shape": (size, size), "num_classes": result.num_classes, "filename": path,
                               "pred_label": preds[i:i + 1].clone().to(torch.long)}
        if result.labels[i] is not None:
            rec["gt_label"] = torch.tensor([result.labels[i]], dtype=torch.long)
        rec["pred_score"] = result.scores[i].clone()
        out.append(rec)
    return out


def _json_payload(result: EvalResult, topk: int = 5) -> dict[str, Any]:
    k = min(topk, result.num_classes)
    results = []
    if result.num_scored:
        top_scores, top_classes = result.scores.topk(k, dim=1)
    for i, path in enumerate(result.paths):
        label = result.labels[i]
        pred = int(result.predictions[i])
        entry: dict[str, Any] = {"path": path, "label": label, "pred_label": pred,
                                 "pred_score": float(result.scores[i, pred])}
        if result.class_names is not None:
            entry["label_name"] = None if label is None else result.class_name(label)
            entry["pred_name"] = result.class_name(pred)
        entry["topk"] = [[int(c), float(s)] for c, s in zip(top_classes[i], top_scores[i])]
        results.append(entry)
    return {
        "protocol": result.protocol,
        "metrics": result.metrics,
        "num_videos": result.num_videos,
        "num_scored": result.num_scored,
        "num_failed": len(result.failures),
        "num_classes": result.num_classes,
        "failures": [{"path": p, "reason": r} for p, r in result.failures],
        "class_names": result.class_names,
        "results": results,
    }


def write_dump(path: str | os.PathLike, result: EvalResult) -> Path:
    """``.pkl``/``.pickle``: MMAction2's ``--dump`` layout (a list of dicts, see :func:`_mmaction2_records`), read by
    ``pickle.load`` or ``mmengine.load`` (not by ``torch.load(weights_only=True)``: plain pickle stores tensors
    through ``torch.storage._load_from_bytes``, which it refuses); ``.json``: protocol, metrics, failures and
    per-video top-5. Written atomically."""
    suffix = Path(path).suffix.lower()
    if suffix in (".pkl", ".pickle"):
        records = _mmaction2_records(result)
        return atomic_write_file(path, lambda f: pickle.dump(records, f, protocol=2), binary=True)
    if suffix == ".json":
        payload = _json_payload(result)
        return atomic_write_file(path, lambda f: (json.dump(payload, f, indent=1), f.write("\n")), binary=False)
    raise ValueError(f"--dump {path}: the file name must end in .pkl, .pickle or .json")


def read_dump(path: str | os.PathLike) -> Any:
    """Read a dump written by :func:`write_dump` (pickle or JSON). Pickle runs code: only read files you trust."""
    if Path(path).suffix.lower() == ".json":
        return json.loads(Path(path).read_text(encoding="utf-8"))
    with open(path, "rb") as f:
        return pickle.load(f)


def _fmt(x: float | None, digits: int = 4) -> str:
    return "-" if x is None else f"{x:.{digits}f}"


def format_per_class_table(result: EvalResult, max_rows: int = 50) -> str:
    """Per-class accuracy of the classes that are a label or a prediction; beyond ``max_rows`` classes, the worst."""
    rows = [r for r in result.per_class() if r["count"] or r["predicted"]]
    note = ""
    if len(rows) > max_rows:
        rows = sorted([r for r in rows if r["count"]], key=lambda r: (r["accuracy"], r["class"]))[:max_rows]
        note = f"\n(the {max_rows} classes with the lowest accuracy; every class is in the CSV)"
    header = ["class", "name", "videos", "correct", "predicted", "accuracy"]
    table = [[str(r["class"]), r["name"][:40], str(r["count"]), str(r["correct"]), str(r["predicted"]),
              _fmt(r["accuracy"])] for r in rows]
    widths = [max(len(x) for x in col) for col in zip(header, *table)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(header, widths)).rstrip(), "  ".join("-" * w for w in widths)]
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in table]
    return "\n".join(lines) + note


def write_per_class_csv(path: str | os.PathLike, result: EvalResult) -> Path:
    rows = result.per_class()

    def write(f: Any) -> None:
        w = csv.writer(f)
        w.writerow(["class", "name", "videos", "correct", "predicted", "accuracy"])
        for r in rows:
            w.writerow([r["class"], r["name"], r["count"], r["correct"], r["predicted"],
                        "" if r["accuracy"] is None else repr(r["accuracy"])])
    return atomic_write_file(path, write, binary=False)


def write_confusion_png(path: str | os.PathLike, result: EvalResult, max_classes: int = 50) -> Path:
    """Row-normalised confusion matrix (rows: true class) as a PNG. Up to ``max_classes`` classes, those that are a
    label or a prediction; with more, the classes of the most frequent confusions (at most 30)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    cm = result.confusion()
    present = [c for c in range(cm.shape[0]) if cm[c].sum() or cm[:, c].sum()]
    title = "confusion matrix"
    if len(present) > max_classes:
        chosen: list[int] = []
        for t, p, _ in top_confused_pairs(cm, n=cm.shape[0] ** 2):
            for c in (t, p):
                if c not in chosen and len(chosen) < 30:
                    chosen.append(c)
            if len(chosen) >= 30:
                break
        present = sorted(chosen) or present[:30]
        title = f"confusion matrix: the {len(present)} most confused of {cm.shape[0]} classes"
    sub = cm[np.ix_(present, present)].astype(np.float64)
    with np.errstate(all="ignore"):
        frac = np.nan_to_num(sub / cm[present].sum(axis=1, keepdims=True))
    n = max(1, len(present))
    inches = min(24.0, max(4.0, 0.32 * n + 2.5))
    fig = Figure(figsize=(inches + 1.2, inches), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    image = ax.imshow(frac, cmap="Blues", vmin=0.0, vmax=1.0, interpolation="nearest")
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="fraction of the true class's videos")
    names = [result.class_name(c)[:24] for c in present]
    ax.set_xticks(range(n), labels=names, rotation=90, fontsize=7 if n > 20 else 9)
    ax.set_yticks(range(n), labels=names, fontsize=7 if n > 20 else 9)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    ax.set_title(title + (f" (top-1 {_fmt(result.metrics.get('top1'))})" if result.metrics else ""))
    if n <= 25:
        for i in range(len(present)):
            for j in range(len(present)):
                if sub[i, j]:
                    ax.text(j, i, str(int(sub[i, j])), ha="center", va="center", fontsize=7 if n > 10 else 10,
                            color="white" if frac[i, j] > 0.5 else "black")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return atomic_write_file(path, lambda f: f.write(buf.getvalue()), binary=True)


# ------------------------------------------------------------------------------------------------ the command

def parse_views(text: str) -> tuple[int, int]:
    """'4x3' -> (4 clips, 3 crops)."""
    parts = text.lower().replace("*", "x").split("x")
    try:
        clips, crops = (int(p) for p in parts)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected CLIPSxCROPS, e.g. 4x3") from None
    if clips < 1 or crops not in (1, 3):
        raise argparse.ArgumentTypeError(f"{text!r}: need at least 1 clip, and 1 or 3 crops")
    return clips, crops


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: must be at least 1")
    return value


def _default_workers() -> int:
    return min(4, os.cpu_count() or 1)


def add_test_command(subparsers: Any) -> None:
    """Register ``uniformerv2 test`` on a ``parser.add_subparsers()`` object."""
    p = subparsers.add_parser(
        "test", help="evaluate a model on labelled videos with the multi-view test protocol",
        description="Evaluate with MMAction2's test protocol: clips x crops views per video, softmax averaged over "
                    "views; top-1, top-5 and mean class accuracy as MMAction2's AccMetric. Videos that cannot be "
                    "decoded are listed and skipped. Runs under torchrun (videos are split across processes).")
    p.add_argument("model", nargs="?", help="preset name (its protocol is the default); may be omitted when "
                                            "--checkpoint is one of our .safetensors files")
    p.add_argument("--checkpoint", help="checkpoint file or URL (any supported format); without it the preset's "
                                        "published checkpoint is downloaded")
    src = p.add_argument_group("videos (one of)")
    src.add_argument("--ann-file", help="annotation list, one 'path label' per line (MMAction2's VideoDataset)")
    src.add_argument("--data-root", default="", help="directory the annotation paths are relative to")
    src.add_argument("--folder", help="a directory with one sub-directory of videos per class")
    p.add_argument("--views", type=parse_views, metavar="CLIPSxCROPS", help="e.g. 4x3 (default: the preset's)")
    p.add_argument("--frames", type=_positive, help="frames per clip (default: the preset's)")
    p.add_argument("--size", type=_positive, help="crop size in pixels (default: the preset's)")
    p.add_argument("--sampling", choices=["mmaction2", "original"], help="frame sampling (default: the preset's)")
    p.add_argument("--labels", help="class names: a file with one per line, or k400, k600, k700, k710, mitv1")
    p.add_argument("--dump", help="write per-video results: .pkl (MMAction2's --dump layout) or .json")
    p.add_argument("--out-dir", help="directory for the per-class CSV, the confusion matrix PNG and metrics JSON "
                                     "(default: beside --dump; nothing when neither is given)")
    p.add_argument("--batch-views", type=_positive, default=24, help="views per forward pass (default 24)")
    p.add_argument("--workers", type=int, default=None, help="DataLoader worker processes (default: min(4, CPUs))")
    p.add_argument("--device", help="cpu, cuda or cuda:N (default: cuda when available); under torchrun each "
                                    "process takes cuda:LOCAL_RANK")
    add_speed_arguments(p)
    p.add_argument("--set", nargs="*", metavar="KEY=VALUE", help="architecture overrides (MMAction2 names)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run_test)


def _samples(args: argparse.Namespace, class_names: list[str] | None) -> tuple[list[Any], list[str] | None, str]:
    from ..cli import UsageError
    from ..data import read_annotation_list, scan_class_folders
    if bool(args.ann_file) == bool(args.folder):
        raise UsageError("give the videos as --ann-file FILE [--data-root DIR] or as --folder DIR")
    if args.ann_file:
        return list(read_annotation_list(args.ann_file, args.data_root or "")), class_names, args.ann_file
    samples, classes = scan_class_folders(args.folder)
    samples = list(samples)
    if class_names is None:
        return samples, list(classes), args.folder
    index = {name: i for i, name in enumerate(class_names)}
    missing = [c for c in classes if c not in index]
    if missing:
        if len(classes) <= len(class_names):
            print(f"uniformerv2 test: warning: class folders {missing[:3]} are not in the label map; labelling "
                  "the folders 0..N-1 in sorted order", file=sys.stderr)
            return samples, class_names, args.folder
        raise UsageError(f"--folder {args.folder}: {len(classes)} class folders but the model has "
                         f"{len(class_names)} classes, and folders {missing[:3]} are not class names")
    remap = [index[c] for c in classes]
    samples = [type(s)(s.path, None if s.label is None else remap[s.label]) for s in samples]
    return samples, class_names, args.folder


def _create_model_rank0_first(build: Callable[[], torch.nn.Module]) -> torch.nn.Module:
    """Under torchrun, rank 0 builds first (and downloads a checkpoint into the cache once), then the others."""
    if not D.is_distributed():
        return build()
    model = error = None
    if D.is_main_process():
        try:
            model = build()
        except Exception as e:  # let the other ranks past the barrier before failing
            error = e
    D.barrier()
    if error is not None:
        raise error
    return model if model is not None else build()


def run_test(args: argparse.Namespace) -> int:
    """``uniformerv2 test``: returns 0 when at least one video was scored."""
    from ..checkpoint import read_config
    from ..cli import UsageError, parse_overrides
    from ..factory import create_model
    from ..inference import checkpoint_metadata, known_class_names, resolve_protocol
    from ..zoo import get_preset

    if not args.model and not args.checkpoint:
        raise UsageError("give a preset name, or --checkpoint with one of our .safetensors files")
    if args.dump and Path(args.dump).suffix.lower() not in (".pkl", ".pickle", ".json"):
        raise UsageError(f"--dump {args.dump}: the file name must end in .pkl, .pickle or .json")
    preset = get_preset(args.model) if args.model else None
    if preset is None and args.checkpoint and os.path.isfile(args.checkpoint) and read_config(args.checkpoint) is None:
        raise UsageError(f"--checkpoint {args.checkpoint}: this checkpoint does not record its architecture; name "
                         "the preset it belongs to (uniformerv2 test PRESET --checkpoint ...)")
    meta = checkpoint_metadata(args.checkpoint)
    class_names, _ = known_class_names(args.labels, preset, meta)
    samples, class_names, source = _samples(args, class_names)
    if not samples:
        raise UsageError(f"{source}: no videos")

    device = D.init_distributed(args.device)
    try:
        overrides = parse_overrides(args.set)
        model = _create_model_rank0_first(lambda: create_model(
            args.model, checkpoint=args.checkpoint, pretrained=args.checkpoint is None,
            progress=D.is_main_process(), **overrides))
        num_classes = int(model.cfg.num_classes)
        bad = [(s.path, s.label) for s in samples if s.label is not None and not 0 <= s.label < num_classes]
        if bad:
            raise UsageError(f"{source}: label {bad[0][1]} of {bad[0][0]} is outside the model's {num_classes} "
                             "classes")
        if class_names is not None and len(class_names) != num_classes:
            print(f"uniformerv2 test: warning: {len(class_names)} class names for a {num_classes}-class model",
                  file=sys.stderr)
        proto = resolve_protocol(preset, model, meta, frames=args.frames, size=args.size, views=args.views,
                                 sampling=args.sampling)
        result = evaluate(model, samples, clip_len=proto.frames, num_clips=proto.clips,
                          num_crops=proto.crops, size=proto.size, batch_views=args.batch_views,
                          num_workers=_default_workers() if args.workers is None else max(0, args.workers),
                          device=device, dtype=args.dtype, class_names=class_names,
                          progress=not args.no_progress, sampling=proto.sampling, compile=args.compile)
    finally:
        D.destroy_distributed()
    if not D.is_main_process():
        return 0 if result.num_scored else 1
    return _report(args, result)


def _report(args: argparse.Namespace, result: EvalResult) -> int:
    for path, reason in result.failures:
        print(f"failed: {path}: {reason}", file=sys.stderr)
    p = result.protocol
    print(f"scored {result.num_scored} of {result.num_videos} videos ({len(result.failures)} failed) with "
          f"{p['num_clips']} clips x {p['num_crops']} crops of {p['clip_len']} frames at {p['size']}px, "
          f"{p['sampling']} sampling")
    if not result.num_scored:
        print("uniformerv2 test: error: no video could be decoded", file=sys.stderr)
        return 1
    if result.metrics:
        for key, value in result.metrics.items():
            print(f"acc/{key}: {value:.4f}")
        print()
        print(format_per_class_table(result))
    else:
        print("no labels: predictions only, no metrics")
    out_dir = Path(args.out_dir) if args.out_dir else (Path(args.dump).parent if args.dump else None)
    stem = Path(args.dump).stem if args.dump else "test"
    written = []
    if args.dump:
        written.append(write_dump(args.dump, result))
    if out_dir is not None:
        summary = {"metrics": result.metrics, "protocol": result.protocol, "num_videos": result.num_videos,
                   "num_scored": result.num_scored,
                   "failures": [{"path": a, "reason": b} for a, b in result.failures]}
        written.append(atomic_write_file(out_dir / f"{stem}_metrics.json",
                                     lambda f: (json.dump(summary, f, indent=1), f.write("\n")), binary=False))
        if result.has_labels:
            written.append(write_per_class_csv(out_dir / f"{stem}_per_class.csv", result))
            written.append(write_confusion_png(out_dir / f"{stem}_confusion.png", result))
    if written:
        print()
    for path in written:
        print(f"wrote {path}")
    return 0
