"""What ``test`` writes: MMAction2-layout dumps, JSON results, per-class tables and CSVs, the confusion matrix."""

from __future__ import annotations

import csv
import json
import os
import pickle
from pathlib import Path
from typing import IO, Any

import torch

from ..atomic import append_line, atomic_write_file, atomic_write_text
from ..errors import UsageError
from ..plots import write_confusion_png as _confusion_png
from .evaluate import EvalResult

__all__ = [
    "write_dump",
    "read_dump",
    "format_per_class_table",
    "write_per_class_csv",
    "write_confusion_png",
    "protocol_record",
    "DUMP_SUFFIXES",
]

DUMP_SUFFIXES = (".pkl", ".pickle", ".json")


def protocol_record(result: EvalResult) -> dict[str, Any]:
    """The protocol as the JSON outputs record it."""
    return {**result.protocol.to_dict(), "average_clips": "prob"}


def _mmaction2_records(result: EvalResult) -> list[dict[str, Any]]:
    """One dict per scored video, as MMAction2 1.2.0's ``tools/test.py --dump`` writes (``ActionDataSample.to_dict``
    through ``DumpResults``, pickled by ``mmengine.dump`` with protocol 2): ``img_shape`` (crop, a tuple),
    ``num_classes`` (int), ``pred_label`` (int64 [1]), ``gt_label`` (int64 [1], left out for unlabelled videos),
    ``pred_score`` (float32 [classes], the softmax averaged over views); plus ``filename``, the video's path."""
    out = []
    preds = result.predictions
    size = result.protocol.size
    for i, path in enumerate(result.paths):
        rec: dict[str, Any] = {
            "img_shape": (size, size),
            "num_classes": result.num_classes,
            "filename": path,
            "pred_label": preds[i : i + 1].clone().to(torch.long),
        }
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
        entry: dict[str, Any] = {
            "path": path,
            "label": label,
            "pred_label": pred,
            "pred_score": float(result.scores[i, pred]),
        }
        if result.class_names is not None:
            entry["label_name"] = None if label is None else result.class_name(label)
            entry["pred_name"] = result.class_name(pred)
        entry["topk"] = [[int(c), float(s)] for c, s in zip(top_classes[i], top_scores[i])]
        results.append(entry)
    return {
        "protocol": protocol_record(result),
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

        def write_json(f: IO[Any]) -> None:
            json.dump(payload, f, indent=1)
            f.write("\n")

        return atomic_write_file(path, write_json, binary=False)
    raise UsageError(f"--dump {path}: the file name must end in .pkl, .pickle or .json")


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
    table = [
        [str(r["class"]), r["name"][:40], str(r["count"]), str(r["correct"]), str(r["predicted"]), _fmt(r["accuracy"])]
        for r in rows
    ]
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
            w.writerow(
                [
                    r["class"],
                    r["name"],
                    r["count"],
                    r["correct"],
                    r["predicted"],
                    "" if r["accuracy"] is None else repr(r["accuracy"]),
                ]
            )

    return atomic_write_file(path, write, binary=False)


def write_confusion_png(path: str | os.PathLike, result: EvalResult, max_classes: int = 50) -> Path:
    """Row-normalised confusion matrix of a labelled result (see :func:`uniformerv2.plots.write_confusion_png`)."""
    names = [result.class_name(c) for c in range(result.num_classes)]
    return _confusion_png(path, result.confusion(), names, top1=result.metrics.get("top1"), max_classes=max_classes)


class JsonLog:
    """A run's JSON-lines log (``log.jsonl``), written by the main process only."""

    def __init__(self, path: Path, enabled: bool) -> None:
        self.path, self.enabled = path, enabled

    def truncate_after(self, global_step: int) -> None:
        """On resume: drop what a killed run logged after its checkpoint."""
        if not self.enabled or not self.path.is_file():
            return
        keep = []
        for line in self.path.read_text().splitlines():
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                continue
            if rec.get("global_step", 0) <= global_step:
                keep.append(line)
        atomic_write_text(self.path, "".join(line + "\n" for line in keep))

    def write(self, rec: dict[str, Any]) -> None:
        if self.enabled:
            append_line(self.path, json.dumps(rec))
