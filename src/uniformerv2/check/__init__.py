"""What is wrong with a dataset before a long run: broken videos, duplicates and leakage, labels and class names.

:func:`run` is ``uniformerv2 check`` as a Python call. Every listed file is opened and the frames the test
protocol samples decoded, in worker processes with a time-out (:mod:`.probe`); exact and near duplicates are
found within a list and across lists, where they are leakage (:mod:`.hashing`, :mod:`.analysis`); labels, classes
and class names are checked against a label map's or a model's (:mod:`.inputs`); the report goes to the terminal,
``check.json``, ``check.md`` with charts, and cleaned annotation lists (:mod:`.report`). ``train`` runs
:func:`check_samples` on its lists, in the same :data:`PROBLEM_KINDS`.

>>> from uniformerv2 import check
>>> report = check.run(ann_file="train.txt", data_root="videos/", val_ann_file="val.txt", num_classes=400)
>>> report.ok, report.counts(report.problems)
"""

from .analysis import check_dataset, check_samples
from .hashing import NEAR_THRESHOLD, frame_hashes, near_score
from .inputs import (
    Classes,
    ModelClasses,
    labels_against_model,
    load_folder_split,
    load_list_split,
    load_splits,
    match_class_names,
    model_aliases,
    model_classes,
    resolve_classes,
)
from .probe import decode_problem, inspect_video, inspect_videos
from .records import (
    DEFAULT_PROTOCOL,
    DUPLICATE_KINDS,
    PROBLEM_KINDS,
    WARNING_KINDS,
    BadSamplesError,
    CheckReport,
    Finding,
    SampleProblem,
    Split,
    VideoInfo,
)
from .report import format_report, write_clean_lists, write_report
from .runner import default_out_dir, run

__all__ = [
    "BadSamplesError",
    "CheckReport",
    "Classes",
    "DEFAULT_PROTOCOL",
    "DUPLICATE_KINDS",
    "Finding",
    "ModelClasses",
    "NEAR_THRESHOLD",
    "PROBLEM_KINDS",
    "SampleProblem",
    "Split",
    "VideoInfo",
    "WARNING_KINDS",
    "check_dataset",
    "check_samples",
    "decode_problem",
    "default_out_dir",
    "format_report",
    "frame_hashes",
    "inspect_video",
    "inspect_videos",
    "labels_against_model",
    "load_folder_split",
    "load_list_split",
    "load_splits",
    "match_class_names",
    "model_aliases",
    "model_classes",
    "near_score",
    "resolve_classes",
    "run",
    "write_clean_lists",
    "write_report",
]
