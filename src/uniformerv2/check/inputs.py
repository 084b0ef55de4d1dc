"""What a check runs on: the lists and class folders (read by :mod:`uniformerv2.data.lists`) and their classes."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Union

from ..data.labels import describe_matches, read_label_map
from ..data.lists import VideoSample, parse_annotation_list, scan_class_folders
from ..errors import AnnotationError, CheckpointError
from ..protocol import Protocol
from .records import Finding, Split

if TYPE_CHECKING:
    from ..config import UniFormerV2Config

__all__ = [
    "ModelClasses",
    "Classes",
    "load_list_split",
    "load_folder_split",
    "model_classes",
    "model_aliases",
    "labels_against_model",
    "match_class_names",
    "resolve_classes",
    "load_splits",
]

PathLike = Union[str, "os.PathLike[str]"]

match_class_names = describe_matches  # each name's match against the model's classes, for the report


@dataclass
class ModelClasses:
    """What a model says about a dataset: its test protocol, number of classes and class names."""

    name: str
    protocol: Protocol
    num_classes: int
    class_names: list[str] | None
    class_names_source: str | None


@dataclass
class Classes:
    """The classes the lists are checked against, where they come from, and what matching their names found."""

    num_classes: int | None = None
    names: list[str] | None = None
    source: str | None = None  # '--num-classes', '--labels FILE', '--model NAME', 'the class folders'
    model: ModelClasses | None = None
    label_names: list[str] | None = None  # the --labels names, when given
    matches: list[dict[str, Any]] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)  # unknown-class problems, loose-match warnings


def load_list_split(name: str, ann_file: PathLike, data_root: PathLike = "") -> Split:
    """An annotation list as :func:`~uniformerv2.data.read_annotation_list` reads it, except that malformed lines
    are findings of the split instead of an error, so every other entry is still checked."""
    samples, malformed = parse_annotation_list(ann_file, data_root)
    split = Split(name=name, source=str(ann_file), samples=samples, kind="list", data_root=str(data_root))
    split.findings = [
        Finding("malformed-line", m.reason, split=name, path=m.first_field, line=m.line) for m in malformed
    ]
    if not split.samples and not split.findings:
        raise AnnotationError(f"{ann_file}: no videos listed")
    return split


def _name_findings(
    matches: Sequence[dict[str, Any]], what: str, against: str, split: str | None, path: Callable[[dict[str, Any]], str]
) -> list[Finding]:
    """``unknown-class`` problems for the names that match nothing, ``loose-class-match`` warnings."""
    out = []
    for m in matches:
        if m["match"] is None:
            hint = f"; closest: {', '.join(repr(x) for x in m['suggestions'])}" if m["suggestions"] else ""
            out.append(
                Finding(
                    "unknown-class", f"{what} {m['name']!r} is not one of {against}{hint}", split=split, path=path(m)
                )
            )
        elif m["match"] == "loose":
            out.append(
                Finding(
                    "loose-class-match",
                    f"{what} {m['name']!r} taken as class {m['index']} {m['class_name']!r} of {against}",
                    level="warning",
                    split=split,
                    path=path(m),
                    label=m["index"],
                )
            )
    return out


def load_folder_split(
    name: str, folder: PathLike, reference: Sequence[str] | None = None, *, aliases: dict[str, int] | None = None
) -> tuple[Split, list[dict[str, Any]], list[Finding]]:
    """A folder of class sub-folders; with ``reference`` class names, labels are the matched names' positions
    (unmatched folders are ``unknown-class`` problems, their videos unlabelled). Returns the split, the name
    matches and the warnings (loose matches, classes without a folder)."""
    samples, folders = scan_class_folders(folder)
    split = Split(
        name=name,
        source=str(folder),
        samples=list(samples),
        kind="folder",
        data_root=str(folder),
        folder_names=list(folders),
        folder_labels=list(range(len(folders))),
    )
    if reference is None:
        return split, [], []
    matches = match_class_names(folders, reference, aliases=aliases)
    for m in matches:
        m["of"] = "class folder"
    findings = _name_findings(
        matches, "class folder", "the class names", name, lambda m: os.path.join(str(folder), m["name"])
    )
    split.findings += [f for f in findings if f.level == "problem"]
    warnings = [f for f in findings if f.level == "warning"]
    matched = {m["index"] for m in matches if m["index"] is not None}
    if len(matched) < len(reference):
        missing = [n for i, n in enumerate(reference) if i not in matched]
        shown = ", ".join(repr(n) for n in missing[:5]) + (", ..." if len(missing) > 5 else "")
        warnings.append(
            Finding(
                "classes-without-folder",
                f"{len(missing)} of {len(reference)} classes have no class folder: {shown}",
                level="warning",
                split=name,
            )
        )
    remap = [m["index"] for m in matches]
    split.folder_labels = remap
    split.samples = [VideoSample(s.path, None if s.label is None else remap[s.label], s.line) for s in samples]
    return split, matches, warnings


def model_classes(name: str) -> ModelClasses:
    """A preset's or one of our .safetensors checkpoints' protocol and classes, without loading any weights."""
    from ..checkpoint import config_from_metadata, pretrained_cfg_from_metadata, read_metadata
    from ..errors import UnknownModelError
    from ..factory import known_class_names
    from ..zoo import get_preset

    try:
        preset = get_preset(name)
    except UnknownModelError:
        if not os.path.isfile(name):
            raise
        preset = None
    checkpoint_names = None
    cfg: UniFormerV2Config | None
    protocol: Protocol | None
    if preset is not None:
        cfg, protocol = preset.config, preset.protocol
    else:
        meta = read_metadata(name)
        cfg = config_from_metadata(meta, name)
        if cfg is None:
            raise CheckpointError(
                f"{name}: not one of our .safetensors checkpoints (which record their classes); "
                "name a preset (`uniformerv2 list`), or give --num-classes or --labels"
            )
        protocol, checkpoint_names = pretrained_cfg_from_metadata(meta, cfg)
        protocol = protocol or Protocol(int(cfg.t_size), int(cfg.input_resolution))
    names, source = known_class_names(int(cfg.num_classes), checkpoint_names=checkpoint_names, preset=preset)
    return ModelClasses(
        name=str(name),
        protocol=protocol,
        num_classes=int(cfg.num_classes),
        class_names=None if names is None else list(names),
        class_names_source=source,
    )


def model_aliases(model: ModelClasses) -> dict[str, int] | None:
    """Other datasets' names for a Kinetics-710 model's classes (MMAction2's channel maps), else None."""
    from ..data.labels import head_aliases

    return head_aliases(model.num_classes)


def labels_against_model(
    label_names: Sequence[str], source: str, model: ModelClasses
) -> tuple[list[dict[str, Any]], list[Finding]]:
    """A label map's names against the classes a model scores: the matches, ``unknown-class`` problems (a class the
    model cannot score) and ``loose-class-match`` warnings."""
    if model.class_names is None:
        if len(label_names) != model.num_classes:
            return [], [
                Finding(
                    "unknown-class",
                    f"{len(label_names)} class names, but the model has "
                    f"{model.num_classes} classes and names none of them",
                    path=source,
                )
            ]
        return [], []
    matches = match_class_names(label_names, model.class_names, aliases=model_aliases(model))
    for m in matches:
        m["of"] = "label map"
    return matches, _name_findings(matches, "class", f"the model's {model.num_classes} classes", None, lambda m: source)


def resolve_classes(*, num_classes: int | None = None, labels: str | None = None, model: str | None = None) -> Classes:
    """The classes of ``uniformerv2 check``'s --num-classes, --labels (a label map's names: the classes the lists
    use) and --model (a preset or checkpoint: its classes and test protocol); a label map's names are matched
    against the model's classes. Neither: the class folders, or the largest label + 1 (see :func:`load_splits`)."""
    found = model_classes(model) if model else None
    label_names = read_label_map(labels) if labels else None
    classes = Classes(model=found, label_names=label_names)
    classes.names = label_names if label_names is not None else (found.class_names if found else None)
    classes.num_classes = len(label_names) if label_names is not None else found.num_classes if found else num_classes
    classes.source = (
        f"--labels {labels}" if labels else f"--model {model}" if found else "--num-classes" if num_classes else None
    )
    if found is not None and label_names is not None:  # the names the lists use must be classes the model scores
        classes.matches, classes.findings = labels_against_model(label_names, str(labels), found)
    return classes


def load_splits(
    classes: Classes,
    *,
    ann_file: PathLike | None = None,
    data_root: PathLike = "",
    folder: PathLike | None = None,
    val_ann_file: PathLike | None = None,
    val_data_root: PathLike | None = None,
) -> tuple[list[Split], Classes]:
    """The training list (``ann_file`` or ``folder``) and the optional validation list, and ``classes`` updated by
    the class folders: their names matched against the class names, or taken as the classes when none are given."""
    if folder:
        model = classes.model
        aliases = model_aliases(model) if model is not None and classes.label_names is None else None
        split, matches, warnings = load_folder_split("train", folder, classes.names, aliases=aliases)
        classes = dataclasses.replace(classes, matches=classes.matches + matches, findings=classes.findings + warnings)
        if classes.names is None and classes.num_classes is None:
            classes = dataclasses.replace(
                classes, names=split.folder_names, num_classes=len(split.folder_names or []), source="the class folders"
            )
    else:
        split = load_list_split("train", ann_file or "", data_root or "")
    splits = [split]
    if val_ann_file:
        root = val_data_root if val_data_root is not None else (data_root or folder or "")
        splits.append(load_list_split("val", val_ann_file, root))
    return splits, classes
