"""``uniformerv2 check``: broken videos, duplicates, leakage and label problems of a dataset, before a run."""

from __future__ import annotations

import argparse
from typing import Any

from ._common import EXIT_OK, add_labels_argument, add_workers_argument, command, positive_int, seconds

EXIT_PROBLEMS = 1  # the check ran and found problems (as an error would: a script stops either way)

EXAMPLES = [
    "uniformerv2 check --ann-file train.txt --data-root videos/ --val-ann-file val.txt --num-classes 400",
    "uniformerv2 check --folder my_videos/ --model uniformerv2-base-p16-res224_clip-kinetics710-pre_8xb32-u8_"
    "kinetics400-rgb --out-dir report/",
    "uniformerv2 check --ann-file train.txt --data-root videos/ --labels k400 --write-clean --drop-duplicates",
]


def register(sub: Any) -> None:
    p = command(
        sub,
        "check",
        help="check a dataset: broken videos, duplicates, leakage, labels",
        description="Check video lists before a long run: every video is opened and decoded at the frames "
        "the test protocol samples; exact and near duplicates (re-encoded, resized, trimmed) "
        "within a list and across lists (leakage); labels and class names. Writes check.json, "
        "check.md and histograms. Exit status 0 when nothing is wrong, 1 when any problem is "
        "found.",
        examples=EXAMPLES,
    )
    src = p.add_argument_group("videos (one of)")
    src.add_argument("--ann-file", help="annotation list, one 'path label' per line (MMAction2's VideoDataset)")
    src.add_argument("--data-root", default="", help="directory the annotation paths are relative to")
    src.add_argument("--folder", help="a directory with one sub-directory of videos per class")
    val = p.add_argument_group("a second list, checked for leakage too")
    val.add_argument("--val-ann-file", help="validation annotation list")
    val.add_argument(
        "--val-data-root", help="directory its paths are relative to (default: --data-root, or the --folder)"
    )
    cls = p.add_argument_group("classes (default: the class folders, or the largest label + 1)")
    cls.add_argument("--num-classes", type=positive_int, help="number of classes; labels must be below it")
    add_labels_argument(cls)
    cls.add_argument(
        "--model",
        help="a preset (`uniformerv2 list`) or one of our .safetensors checkpoints: its "
        "classes, class names and test protocol (no weights are loaded)",
    )
    cls.add_argument(
        "--min-per-class", type=positive_int, default=5, help="warn about classes with fewer usable videos (default 5)"
    )
    p.add_argument("--frames", type=positive_int, help="frames per clip to decode (default 8, or the model's)")
    p.add_argument("--clips", type=positive_int, help="clips per video to decode (default 4, or the model's)")
    p.add_argument("--out-dir", help="where check.json, check.md and the PNGs go (default: <list name>_check/)")
    p.add_argument(
        "--write-clean",
        action="store_true",
        help="write each list without its broken entries beside it, as NAME.clean.txt (a --folder's "
        "list goes to --out-dir); the originals are never changed",
    )
    p.add_argument(
        "--drop-duplicates",
        action="store_true",
        help="with --write-clean, also drop duplicates, near duplicates and training entries that leak "
        "into the validation list (the first copy in a list is kept)",
    )
    add_workers_argument(p, None, "processes that decode videos (default: the CPUs, at most 8)")
    p.add_argument(
        "--timeout",
        type=seconds,
        default=60.0,
        help="give up on a video after this long, e.g. 30s, and report it (default 60s)",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from .. import check

    report = check.run(
        ann_file=args.ann_file,
        data_root=args.data_root,
        folder=args.folder,
        val_ann_file=args.val_ann_file,
        val_data_root=args.val_data_root,
        num_classes=args.num_classes,
        labels=args.labels,
        model=args.model,
        min_per_class=args.min_per_class,
        frames=args.frames,
        clips=args.clips,
        out_dir=args.out_dir,
        write_clean=args.write_clean,
        drop_duplicates=args.drop_duplicates,
        workers=args.workers,
        timeout=args.timeout,
        progress=not args.no_progress,
    )
    print(check.format_report(report))
    print()
    written = report.written
    print(f"wrote {written[0]}, {written[1]}" + (f" and {len(written) - 2} PNGs" if len(written) > 2 else ""))
    for path, kept, dropped in report.clean_lists:
        print(f"wrote {path} ({kept} entries kept, {dropped} dropped)")
    return EXIT_OK if report.ok else EXIT_PROBLEMS
