"""``uniformerv2 check`` as one Python call: :func:`run` takes the command's options and writes what it writes."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Union

from ..errors import UsageError
from .analysis import check_dataset
from .inputs import load_splits, resolve_classes
from .records import DEFAULT_PROTOCOL, CheckReport
from .report import write_clean_lists, write_report

__all__ = ["run", "default_out_dir"]

PathLike = Union[str, "os.PathLike[str]"]


def default_out_dir(ann_file: PathLike | None = None, folder: PathLike | None = None) -> Path:
    """Where the report goes without ``out_dir``: ``<list name>_check/`` in the working directory."""
    return Path(f"{Path(ann_file or folder or '').stem or 'dataset'}_check")


def run(
    *,
    ann_file: PathLike | None = None,
    data_root: PathLike = "",
    folder: PathLike | None = None,
    val_ann_file: PathLike | None = None,
    val_data_root: PathLike | None = None,
    num_classes: int | None = None,
    labels: str | None = None,
    model: str | None = None,
    min_per_class: int = 5,
    frames: int | None = None,
    clips: int | None = None,
    out_dir: PathLike | None = None,
    write_clean: bool = False,
    drop_duplicates: bool = False,
    workers: int | None = None,
    timeout: float = 60.0,
    progress: bool = True,
) -> CheckReport:
    """Check a dataset as ``uniformerv2 check`` does, with its options as keyword arguments (``progress=False`` is
    ``--no-progress``): the videos as ``ann_file`` (+ ``data_root``) or ``folder``, and optionally ``val_ann_file``;
    the classes from ``num_classes``, or ``labels`` and/or ``model``. Writes ``check.json``, ``check.md`` and the
    charts into ``out_dir`` (default ``<list name>_check/``) and, with ``write_clean``, the cleaned lists; returns
    the report, whose ``written`` and ``clean_lists`` name those files and ``exit_status`` is the command's.

    Run it under ``if __name__ == '__main__':`` in a script: the videos are decoded in worker processes."""
    if bool(ann_file) == bool(folder):
        raise UsageError("give the videos as --ann-file FILE [--data-root DIR] or as --folder DIR")
    if val_data_root and not val_ann_file:
        raise UsageError("--val-data-root needs --val-ann-file")
    if drop_duplicates and not write_clean:
        raise UsageError("--drop-duplicates only applies to the lists --write-clean writes")
    if num_classes is not None and (labels or model):
        raise UsageError("give the classes once: --num-classes, or --labels and/or --model")
    if workers is not None and workers < 1:
        raise UsageError(f"--workers must be at least 1, got {workers}")

    classes = resolve_classes(num_classes=num_classes, labels=labels, model=model)
    protocol = (classes.model.protocol if classes.model else DEFAULT_PROTOCOL).replace(frames=frames, clips=clips)
    splits, classes = load_splits(
        classes,
        ann_file=ann_file,
        data_root=data_root or "",
        folder=folder,
        val_ann_file=val_ann_file,
        val_data_root=val_data_root,
    )
    report = check_dataset(
        splits,
        protocol=protocol,
        num_classes=classes.num_classes,
        num_classes_source=classes.source,
        class_names=classes.names,
        name_matches=classes.matches,
        findings=classes.findings,
        workers=workers if workers is not None else min(8, os.cpu_count() or 1),
        timeout=timeout,
        min_per_class=min_per_class,
        progress=progress,
    )
    out = Path(out_dir) if out_dir else default_out_dir(ann_file, folder)
    report.written = write_report(report, out)
    if write_clean:
        report.clean_lists = write_clean_lists(report, drop_duplicates=drop_duplicates, out_dir=out)
    return report
