"""``uniformerv2 check``: a dataset doctor: broken videos, duplicates, leakage and label problems, before a run."""
from __future__ import annotations

import argparse
import os
from pathlib import Path
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
    p = command(sub, "check", help="check a dataset: broken videos, duplicates, leakage, labels",
                description="Check video lists before a long run: every video is opened and decoded at the frames "
                            "the test protocol samples; exact and near duplicates (re-encoded, resized, trimmed) "
                            "within a list and across lists (leakage); labels and class names. Writes check.json, "
                            "check.md and histograms. Exit status 0 when nothing is wrong, 1 when any problem is "
                            "found.", examples=EXAMPLES)
    src = p.add_argument_group("videos (one of)")
    src.add_argument("--ann-file", help="annotation list, one 'path label' per line (MMAction2's VideoDataset)")
    src.add_argument("--data-root", default="", help="directory the annotation paths are relative to")
    src.add_argument("--folder", help="a directory with one sub-directory of videos per class")
    val = p.add_argument_group("a second list, checked for leakage too")
    val.add_argument("--val-ann-file", help="validation annotation list")
    val.add_argument("--val-data-root", help="directory its paths are relative to (default: --data-root, or the "
                                             "--folder)")
    cls = p.add_argument_group("classes (default: the class folders, or the largest label + 1)")
    cls.add_argument("--num-classes", type=positive_int, help="number of classes; labels must be below it")
    add_labels_argument(cls)
    cls.add_argument("--model", help="a preset (`uniformerv2 list`) or one of our .safetensors checkpoints: its "
                                     "classes, class names and test protocol (no weights are loaded)")
    cls.add_argument("--min-per-class", type=positive_int, default=5,
                     help="warn about classes with fewer usable videos (default 5)")
    p.add_argument("--frames", type=positive_int, help="frames per clip to decode (default 8, or the model's)")
    p.add_argument("--clips", type=positive_int, help="clips per video to decode (default 4, or the model's)")
    p.add_argument("--out-dir", help="where check.json, check.md and the PNGs go (default: <list name>_check/)")
    p.add_argument("--write-clean", action="store_true",
                   help="write each list without its broken entries beside it, as NAME.clean.txt (a --folder's "
                        "list goes to --out-dir); the originals are never changed")
    p.add_argument("--drop-duplicates", action="store_true",
                   help="with --write-clean, also drop duplicates, near duplicates and training entries that leak "
                        "into the validation list (the first copy in a list is kept)")
    add_workers_argument(p, None, "processes that decode videos (default: the CPUs, at most 8)")
    p.add_argument("--timeout", type=seconds, default=60.0,
                   help="give up on a video after this long, e.g. 30s, and report it (default 60s)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from .. import doctor
    from ..data.labels import read_label_map
    from ..errors import UsageError
    if bool(args.ann_file) == bool(args.folder):
        raise UsageError("give the videos as --ann-file FILE [--data-root DIR] or as --folder DIR")
    if args.val_data_root and not args.val_ann_file:
        raise UsageError("--val-data-root needs --val-ann-file")
    if args.drop_duplicates and not args.write_clean:
        raise UsageError("--drop-duplicates only applies to the lists --write-clean writes")
    if args.num_classes is not None and (args.labels or args.model):
        raise UsageError("give the classes once: --num-classes, or --labels and/or --model")
    if args.workers is not None and args.workers < 1:
        raise UsageError(f"--workers must be at least 1, got {args.workers}")

    model = doctor.model_classes(args.model) if args.model else None
    protocol = (model.protocol if model else doctor.DEFAULT_PROTOCOL).replace(frames=args.frames, clips=args.clips)
    label_names = read_label_map(args.labels) if args.labels else None
    class_names = label_names if label_names is not None else (model.class_names if model else None)
    num_classes = (len(label_names) if label_names is not None else model.num_classes if model
                   else args.num_classes)
    source = (f"--labels {args.labels}" if args.labels else f"--model {args.model}" if model
              else "--num-classes" if args.num_classes else None)
    matches: list = []
    findings: list = []
    if model is not None and label_names is not None:  # the names the lists use must be classes the model scores
        matches, findings = doctor.labels_against_model(label_names, args.labels, model)

    if args.folder:
        aliases = doctor.model_aliases(model) if model is not None and label_names is None else None
        split, folder_matches, warnings = doctor.load_folder_split("train", args.folder, class_names,
                                                                   aliases=aliases)
        matches, findings = matches + folder_matches, findings + warnings
        if class_names is None and num_classes is None:
            class_names, num_classes, source = split.folder_names, len(split.folder_names or []), "the class folders"
    else:
        split = doctor.load_list_split("train", args.ann_file, args.data_root or "")
    splits = [split]
    if args.val_ann_file:
        root = args.val_data_root if args.val_data_root is not None else (args.data_root or args.folder or "")
        splits.append(doctor.load_list_split("val", args.val_ann_file, root))

    workers = args.workers if args.workers is not None else min(8, os.cpu_count() or 1)
    report = doctor.check_dataset(splits, protocol=protocol, num_classes=num_classes, num_classes_source=source,
                                  class_names=class_names, name_matches=matches, findings=findings,
                                  workers=workers, timeout=args.timeout, min_per_class=args.min_per_class,
                                  progress=not args.no_progress)
    out_dir = Path(args.out_dir or f"{Path(args.ann_file or args.folder).stem or 'dataset'}_check")
    print(doctor.format_report(report))
    print()
    written = doctor.write_report(report, out_dir)
    print(f"wrote {written[0]}, {written[1]}" + (f" and {len(written) - 2} PNGs" if len(written) > 2 else ""))
    if args.write_clean:
        for path, kept, dropped in doctor.write_clean_lists(report, drop_duplicates=args.drop_duplicates,
                                                            out_dir=out_dir):
            print(f"wrote {path} ({kept} entries kept, {dropped} dropped)")
    return EXIT_OK if report.ok else EXIT_PROBLEMS
