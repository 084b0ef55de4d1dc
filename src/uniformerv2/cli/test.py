"""``uniformerv2 test``: evaluate a model on labelled videos with the multi-view test protocol."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from ._common import (
    add_batch_arguments,
    add_labels_argument,
    add_model_arguments,
    add_size_argument,
    command,
    exit_status,
    model_overrides,
    model_source,
    positive_int,
    views,
    warn,
)

EXAMPLES = [
    "uniformerv2 test --model uniformerv2-base-p16-res224_clip-kinetics710-pre_8xb32-u8_kinetics400-rgb "
    "--checkpoint k400_b16.pth --ann-file kinetics400_val_list_videos.txt --data-root val/ --dump results.pkl",
    "uniformerv2 test --checkpoint work_dirs/run/model.safetensors --folder my_videos/ --out-dir report/",
    "torchrun --nproc-per-node 4 -m uniformerv2.cli test --model PRESET --ann-file list.txt --data-root videos/",
]


def register(sub: Any) -> None:
    p = command(
        sub,
        "test",
        help="evaluate a model on labelled videos with the multi-view test protocol",
        description="Evaluate with MMAction2's test protocol: clips x crops views per video, softmax "
        "averaged over views; top-1, top-5 and mean class accuracy as MMAction2's AccMetric. "
        "Videos that cannot be decoded are listed and skipped (exit status 3). Runs under "
        "torchrun (videos are split across processes).",
        examples=EXAMPLES,
    )
    add_model_arguments(p, positional=True)
    src = p.add_argument_group("videos (one of)")
    src.add_argument("--ann-file", help="annotation list, one 'path label' per line (MMAction2's VideoDataset)")
    src.add_argument("--data-root", default="", help="directory the annotation paths are relative to")
    src.add_argument("--folder", help="a directory with one sub-directory of videos per class")
    p.add_argument("--views", type=views, metavar="CLIPSxCROPS", help="e.g. 4x3 (default: the model's protocol)")
    p.add_argument("--frames", type=positive_int, help="frames per clip (default: the model's protocol)")
    add_size_argument(p)
    p.add_argument("--sampling", choices=["mmaction2", "original"], help="frame sampling (default: the model's)")
    add_labels_argument(p)
    p.add_argument(
        "--labelled-only",
        action="store_true",
        help="a list mixing labelled and unlabelled lines: compute the metrics over the labelled ones "
        "(default: such a list is an error)",
    )
    p.add_argument("--dump", help="write per-video results: .pkl (MMAction2's --dump layout) or .json")
    p.add_argument(
        "--out-dir",
        help="directory for the per-class CSV, the confusion matrix PNG and metrics JSON "
        "(default: beside --dump; nothing when neither is given)",
    )
    add_batch_arguments(p, "DataLoader worker processes (default: min(4, CPUs))")
    p.set_defaults(func=run)


def _samples(args: argparse.Namespace) -> tuple[list[Any], list[str] | None, str]:
    """The videos, the class folders' names (None for a list), and where they came from."""
    from ..data import read_annotation_list, scan_class_folders
    from ..errors import UsageError

    if bool(args.ann_file) == bool(args.folder):
        raise UsageError("give the videos as --ann-file FILE [--data-root DIR] or as --folder DIR")
    if args.ann_file:
        return list(read_annotation_list(args.ann_file, args.data_root or "")), None, args.ann_file
    samples, classes = scan_class_folders(args.folder)
    return list(samples), list(classes), args.folder


def _label_folders(
    samples: list[Any], folders: list[str], class_names: list[str] | None, source: str
) -> tuple[list[Any], list[str]]:
    """Class folders labelled by the model's class of the same name; folders 0..N-1 when the model names none."""
    from ..errors import UsageError

    if class_names is None:
        return samples, folders
    index = {name: i for i, name in enumerate(class_names)}
    missing = [c for c in folders if c not in index]
    if missing:
        if len(folders) <= len(class_names):
            warn(
                "test",
                f"class folders {missing[:3]} are not the model's class names; labelling the folders "
                "0..N-1 in sorted order",
            )
            return samples, class_names
        raise UsageError(
            f"--folder {source}: {len(folders)} class folders but the model has {len(class_names)} "
            f"classes, and folders {missing[:3]} are not class names"
        )
    remap = [index[c] for c in folders]
    return [type(s)(s.path, None if s.label is None else remap[s.label]) for s in samples], class_names


def _check_labels(samples: list[Any], source: str, num_classes: int, labelled_only: bool) -> list[Any]:
    """A list is all labelled or all unlabelled; every label is a class of the model. All bad lines at once."""
    from ..errors import AnnotationError

    unlabelled = [i for i, s in enumerate(samples) if s.label is None]
    if unlabelled and len(unlabelled) < len(samples):
        if labelled_only:
            warn(
                "test",
                f"{source}: {len(unlabelled)} of {len(samples)} videos have no label; the metrics cover "
                "the labelled ones (--labelled-only)",
            )
            samples = [s for s in samples if s.label is not None]
        else:
            shown = ", ".join(f"line {samples[i].line or '?'} ({samples[i].path})" for i in unlabelled[:10])
            more = f" and {len(unlabelled) - 10} more" if len(unlabelled) > 10 else ""
            raise AnnotationError(
                f"{source}: {len(unlabelled)} of {len(samples)} videos have no label: {shown}"
                f"{more}. Label them, drop them, or pass --labelled-only to compute the metrics "
                "over the labelled ones"
            )
    bad = [s for s in samples if s.label is not None and not 0 <= s.label < num_classes]
    if bad:
        shown = "; ".join(f"line {s.line or '?'}: label {s.label} ({s.path})" for s in bad[:10])
        more = f"; and {len(bad) - 10} more" if len(bad) > 10 else ""
        raise AnnotationError(
            f"{source}: {len(bad)} labels outside the model's {num_classes} classes [0, "
            f"{num_classes - 1}]: {shown}{more}"
        )
    return samples


def _warn_if_permuted(result: Any, shown: int = 5) -> None:
    """Low top-1 that a reordering of the classes would make high: the list's label order is not the model's."""
    from ..engine.metrics import best_label_mapping

    top1 = result.metrics.get("top1", 0.0)
    matched, moved = best_label_mapping(result.confusion())
    if not moved or matched < top1 + 0.2 or matched < 1.5 * top1:
        return
    pairs = "; ".join(
        f"label {t} ({result.class_name(t)!r}) looks like the model's class {p} ({result.class_name(p)!r})"
        for t, p in moved[:shown]
    )
    warn(
        "test",
        f"top-1 is {top1:.3f}, but matching the labels to the model's classes one to one would give "
        f"{matched:.3f}: the list's labels look like the model's classes in another order. {pairs}"
        f"{' ...' if len(moved) > shown else ''}. Write the list with the model's indices, or pass "
        "--labels with your class names in your order (matched to the model's by name)",
    )


def run(args: argparse.Namespace) -> int:
    from ..engine import distributed as D
    from ..engine.evaluate import evaluate
    from ..engine.reports import DUMP_SUFFIXES
    from ..errors import UsageError
    from ..factory import create_model

    name, checkpoint = model_source(args)
    if args.dump and Path(args.dump).suffix.lower() not in DUMP_SUFFIXES:
        raise UsageError(f"--dump {args.dump}: the file name must end in .pkl, .pickle or .json")
    samples, folders, source = _samples(args)
    if not samples:
        raise UsageError(f"{source}: no videos")

    device = D.init_distributed(args.device)
    try:
        with D.main_process_first():
            model = create_model(
                name,
                checkpoint=checkpoint,
                pretrained=checkpoint is None,
                progress=D.is_main_process(),
                labels=args.labels,
                **model_overrides(args),
            )
        pretrained = model.pretrained_cfg
        class_names = list(pretrained.class_names) if pretrained.class_names else None
        if folders is not None:
            samples, class_names = _label_folders(samples, folders, class_names, source)
        samples = _check_labels(samples, source, model.num_classes, args.labelled_only)
        clips, crops = args.views or (None, None)
        protocol = pretrained.protocol.replace(frames=args.frames, clips=clips, crops=crops, sampling=args.sampling)
        result = evaluate(
            model,
            samples,
            protocol,
            batch_views=args.batch_views,
            workers=min(4, os.cpu_count() or 1) if args.workers is None else max(0, args.workers),
            device=device,
            dtype=args.dtype,
            class_names=class_names,
            progress=not args.no_progress,
            compile=args.compile,
        )
    finally:
        D.destroy_distributed()
    distributed = D.is_distributed()
    status = _report(args, result) if D.is_main_process() else exit_status(result.num_scored, len(result.failures))
    # torchrun turns any non-zero exit of a rank into its own failure (exit 1, with a traceback of the launcher):
    # a partial result under torchrun exits 0, its failures listed by rank 0
    return 0 if distributed and status == 3 else status


def _report(args: argparse.Namespace, result: Any) -> int:
    from ..atomic import atomic_write_text
    from ..engine.reports import (
        format_per_class_table,
        protocol_record,
        write_confusion_png,
        write_dump,
        write_per_class_csv,
    )

    for path, reason in result.failures:
        print(f"failed: {path}: {reason}", file=sys.stderr)
    print(
        f"scored {result.num_scored} of {result.num_videos} videos ({len(result.failures)} failed) with "
        f"{result.protocol.describe()}"
    )
    if not result.num_scored:
        print("uniformerv2 test: error: no video could be decoded", file=sys.stderr)
        return exit_status(0, len(result.failures))
    if result.metrics:
        for key, value in result.metrics.items():
            print(f"acc/{key}: {value:.4f}")
        print()
        print(format_per_class_table(result))
        _warn_if_permuted(result)
    else:
        print("no labels: predictions only, no metrics")
    out_dir = Path(args.out_dir) if args.out_dir else (Path(args.dump).parent if args.dump else None)
    stem = Path(args.dump).stem if args.dump else "test"
    written = []
    if args.dump:
        written.append(write_dump(args.dump, result))
    if out_dir is not None:
        summary = {
            "metrics": result.metrics,
            "protocol": protocol_record(result),
            "num_videos": result.num_videos,
            "num_scored": result.num_scored,
            "num_failed": len(result.failures),
            "failures": [{"path": a, "reason": b} for a, b in result.failures],
        }
        written.append(atomic_write_text(out_dir / f"{stem}_metrics.json", json.dumps(summary, indent=1) + "\n"))
        if result.has_labels:
            written.append(write_per_class_csv(out_dir / f"{stem}_per_class.csv", result))
            written.append(write_confusion_png(out_dir / f"{stem}_confusion.png", result))
    if written:
        print()
    for path in written:
        print(f"wrote {path}")
    if result.failures:
        print(
            f"uniformerv2 test: {len(result.failures)} of {result.num_videos} videos failed (listed above); the "
            "results of the others are written",
            file=sys.stderr,
        )
    return exit_status(result.num_scored, len(result.failures))
