"""The dataset doctor behind ``uniformerv2 check``: what is wrong with a set of video lists before a long run.

Every listed file is opened, its video stream read, and the frames the test protocol samples decoded (not just the
header), in worker processes with a time-out, so a file that hangs the decoder (or the file system) is reported
and the run goes on. For each file: size, sha256, frame count, fps, duration, resolution, codec and display
rotation. On top of that:

* exact duplicates (same sha256) and near duplicates (the same content re-encoded, resized or trimmed) within a
  list, and across lists, where they are reported as leakage (a training video that is also a validation video);
* labels out of range, unlabelled entries of a labelled list, classes with no or few videos, class balance; class
  folder names against the class names (a label map's or a model's), and a label map's names against a model's:
  exact, then case- and punctuation-insensitive, with the closest names suggested for the rest;
* a report in the terminal, as JSON and as Markdown with histograms (:func:`write_report`), and annotation lists
  without the broken (and, if asked, the duplicate) entries (:func:`write_clean_lists`).

Near duplicates. Each decoded frame gets a 255-bit perceptual hash: the luma, area-resampled to 32x32, its 2-D DCT,
and one bit per coefficient of the 16x16 lowest frequencies (DC excluded): above or below their median. Resizing
and re-encoding barely move these bits. Trimming moves the sampled frames to other times; a frame of a trimmed copy
then lies between two consecutive sampled frames of the original, so it is compared with both: only the bits on
which those two agree count (see :func:`near_score`). Two videos are near duplicates when, for the median frame
of one of them, at most ``NEAR_THRESHOLD`` of the bits that count differ. Candidate pairs come first from a
64-bit hash of each video's mean frame (all pairs, in tiles: about a minute for 200k videos), so the frame-level
comparison runs only on pairs that look alike as a whole. Frames of a uniform colour (black, fades) carry no
hash and are left out of the comparison.
"""
from __future__ import annotations

import collections
import contextlib
import dataclasses
import hashlib
import json
import math
import os
import signal
import stat
import sys
import time
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Optional, Sequence, Union

import numpy as np

from ._version import __version__
from .atomic import atomic_write_text
from .data.decode import PyAVReader, frame_to_rgb
from .data.labels import describe_matches
from .data.lists import VideoSample, read_list_text
from .data.views import sample_test_indices
from .errors import AnnotationError, CheckpointError, UniFormerV2Error, UsageError, VideoDecodeError
from .protocol import Protocol

__all__ = ["DEFAULT_PROTOCOL", "PROBLEM_KINDS", "WARNING_KINDS", "NEAR_THRESHOLD", "Split", "VideoInfo", "Finding",
           "ModelClasses", "CheckReport", "load_list_split", "load_folder_split", "model_classes", "model_aliases",
           "labels_against_model", "match_class_names", "inspect_video", "inspect_videos", "frame_hashes",
           "near_score", "check_dataset", "format_report", "write_report", "write_clean_lists"]

PathLike = Union[str, "os.PathLike[str]"]

DEFAULT_PROTOCOL = Protocol(8, 224, 4, 3)

# kind -> what it means; a problem makes `uniformerv2 check` exit 1, a warning does not
PROBLEM_KINDS = {
    "missing": "no such file",
    "empty": "an empty file (0 bytes)",
    "not-a-video": "a text file, not a video",
    "unreadable": "not a video FFmpeg can open (corrupt, or not a video format)",
    "truncated": "the file was cut short (a download or copy that did not finish)",
    "no-video-stream": "a media file without a video stream (audio only, ...)",
    "no-frames": "a video stream without frames",
    "decode-error": "opens, but the frames the test protocol samples cannot be decoded",
    "timeout": "the decoder or the file system hung on it; given up after --timeout",
    "crash": "the decoder crashed on it (the worker process died)",
    "malformed-line": "a line of an annotation list that cannot be read",
    "no-label": "an unlabelled entry in a labelled list",
    "label-out-of-range": "a label outside [0, number of classes)",
    "duplicate": "the same bytes as an earlier entry of the same list (or the same file listed twice)",
    "near-duplicate": "the same content as an earlier entry of the same list: re-encoded, resized or trimmed",
    "leakage": "a video of this list (or a copy of it) is also in a later list, e.g. a training video in val",
    "empty-class": "a class with no usable video in a list",
    "unknown-class": "a class folder (or --labels name) that matches none of the class names (the model's)",
}
WARNING_KINDS = {
    "few-frames": "fewer frames than a clip takes: the test protocol repeats frames",
    "blank": "every sampled frame is a uniform colour (black, ...)",
    "small-class": "a class with fewer videos than --min-per-class",
    "imbalance": "the largest class has many times the videos of the smallest",
    "loose-class-match": "a name matches a class name only when case and punctuation are ignored",
    "classes-without-folder": "classes of the model with no class folder",
}
# entries dropped from a cleaned list: every problem of an entry, the duplicate kinds only with drop_duplicates
DUPLICATE_KINDS = ("duplicate", "near-duplicate", "leakage")

# perceptual hashing (see the module docstring)
THUMB = 32              # luma thumbnail side
FRAME_BLOCK = 16        # low-frequency DCT block of a frame hash: 16x16 coefficients -> 255 bits (DC left out)
FRAME_BITS = FRAME_BLOCK * FRAME_BLOCK - 1
FLAT_STD = 2.0          # grey levels: a thumbnail flatter than this is a uniform frame with no usable hash
NEAR_THRESHOLD = 0.14   # near duplicates: median fraction of differing (stable) bits at most this
KEY_THRESHOLD = 10      # candidate pairs: mean-frame hashes (63 bits) at most this far apart (copies: <= 8)
MIN_AGREE = 128         # two sampled frames agreeing on fewer bits are a cut, not a motion to interpolate
_WORD_MASK = np.array([(1 << 63) - 1] + [(1 << 64) - 1] * 3, dtype=np.uint64)  # drops the DC bit (the first)

_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)


# ------------------------------------------------------------------------------------------------ records


@dataclass
class Split:
    """One list of videos: ``name`` ('train', 'val'), where it comes from, its samples and what loading found."""

    name: str
    source: str
    samples: list[VideoSample]
    kind: str = "list"                       # 'list' (an annotation file) or 'folder' (class sub-folders)
    data_root: str = ""
    folder_names: Optional[list[str]] = None  # class folders, sorted
    folder_labels: Optional[list[Optional[int]]] = None  # each folder's label (None: matches no class name)
    findings: list["Finding"] = field(default_factory=list)  # malformed lines, unknown class folders


@dataclass
class VideoInfo:
    """What inspecting one file found: its properties, or ``kind``/``error`` when it is unusable."""

    path: str
    size: Optional[int] = None
    sha256: Optional[str] = None
    frames: Optional[int] = None
    fps: Optional[float] = None
    duration: Optional[float] = None
    width: Optional[int] = None              # as displayed (after the rotation)
    height: Optional[int] = None
    coded_width: Optional[int] = None
    coded_height: Optional[int] = None
    codec: Optional[str] = None
    rotation: Optional[int] = None           # counterclockwise degrees the frames are turned to be shown upright
    kind: Optional[str] = None               # a PROBLEM_KINDS key when the file cannot be used
    error: Optional[str] = None
    warnings: list[tuple[str, str]] = field(default_factory=list)
    seconds: float = 0.0
    hashes: Optional[np.ndarray] = None      # uint64 [frames, 4]: the non-uniform sampled frames, in time order
    key: Optional[int] = None                # 64-bit hash of the mean frame

    @property
    def ok(self) -> bool:
        return self.kind is None

    def to_dict(self) -> dict[str, Any]:
        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name not in ("hashes", "key")}
        d["warnings"] = [{"kind": k, "detail": v} for k, v in self.warnings]
        d["duration"] = None if self.duration is None else round(self.duration, 4)
        d["fps"] = None if self.fps is None else round(self.fps, 4)
        d["seconds"] = round(self.seconds, 4)
        return d


@dataclass
class Finding:
    """A problem (``level='problem'``, exit status 1) or a warning: what, where, and what it relates to."""

    kind: str
    detail: str
    level: str = "problem"
    split: Optional[str] = None
    path: Optional[str] = None
    line: Optional[int] = None
    label: Optional[int] = None
    related: list[str] = field(default_factory=list)
    entry: Optional[int] = None              # index of the sample in its split (not in the JSON)

    def where(self) -> str:
        place = self.path or ""
        if self.split:
            place = f"{self.split}" + (f":{self.line}" if self.line else "") + (f" {place}" if place else "")
        return place

    def to_dict(self) -> dict[str, Any]:
        d = {k: getattr(self, k) for k in ("kind", "level", "split", "path", "line", "label", "detail", "related")}
        return {k: v for k, v in d.items() if v not in (None, [])}


@dataclass
class ModelClasses:
    """What a model says about a dataset: its test protocol, number of classes and class names."""

    name: str
    protocol: Protocol
    num_classes: int
    class_names: Optional[list[str]]
    class_names_source: Optional[str]


@dataclass
class CheckReport:
    """Everything :func:`check_dataset` found; ``ok`` when there is no problem (warnings allowed)."""

    protocol: Protocol
    splits: list[Split]
    videos: dict[str, VideoInfo]
    problems: list[Finding]
    warnings: list[Finding]
    num_classes: Optional[int]
    num_classes_source: Optional[str]
    class_names: Optional[list[str]]
    class_counts: dict[str, list[int]]
    name_matches: list[dict[str, Any]]
    exact_groups: list[list[str]]
    near_pairs: list[dict[str, Any]]
    seconds: float
    workers: int
    timeout: float

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def exit_status(self) -> int:
        return 0 if self.ok else 1

    def counts(self, findings: Iterable[Finding]) -> dict[str, int]:
        return dict(collections.Counter(f.kind for f in findings).most_common())

    def to_dict(self) -> dict[str, Any]:
        """The JSON report (``check.json``)."""
        splits = []
        for s in self.splits:
            flagged = {f.entry for f in self.problems if f.split == s.name and f.entry is not None}
            splits.append({"name": s.name, "source": s.source, "kind": s.kind, "data_root": s.data_root,
                           "entries": len(s.samples), "entries_with_problems": len(flagged),
                           "classes": self.class_counts.get(s.name)})
        return {
            "uniformerv2_check": 1, "uniformerv2": __version__, "ok": self.ok, "exit_status": self.exit_status,
            "protocol": self.protocol.to_dict(), "seconds": round(self.seconds, 3), "workers": self.workers,
            "timeout_s": self.timeout,
            "summary": {"videos": len(self.videos), "usable_videos": sum(v.ok for v in self.videos.values()),
                        "problems": self.counts(self.problems), "warnings": self.counts(self.warnings)},
            "classes": {"num_classes": self.num_classes, "source": self.num_classes_source,
                        "names": self.class_names, "name_matches": self.name_matches},
            "splits": splits,
            "problems": [f.to_dict() for f in self.problems],
            "warnings": [f.to_dict() for f in self.warnings],
            "duplicates": {"exact_groups": self.exact_groups, "near_pairs": self.near_pairs},
            "entries": {s.name: [{"line": x.line, "path": x.path, "label": x.label} for x in s.samples]
                        for s in self.splits},
            "videos": [v.to_dict() for v in self.videos.values()],
        }


def _key(path: str) -> str:
    """One key per file however a list spells it (``a//b.mp4``, ``./b.mp4``)."""
    return os.path.normpath(path)


# ------------------------------------------------------------------------------------------------ inputs


def load_list_split(name: str, ann_file: PathLike, data_root: PathLike = "") -> Split:
    """An annotation list as :func:`~uniformerv2.data.read_annotation_list` reads it, except that malformed lines
    are findings of the split instead of an error, so every other entry is still checked."""
    text = read_list_text(ann_file)
    split = Split(name=name, source=str(ann_file), samples=[], kind="list", data_root=str(data_root))
    for lineno, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        fields = stripped.split()
        reason = None
        label = None
        if len(fields) > 2:
            reason = f"expected 'path [label]', got {len(fields)} fields: {stripped!r}"
        elif len(fields) == 2:
            try:
                label = int(fields[1])
            except ValueError:
                reason = f"label {fields[1]!r} is not an integer"
            else:
                if label < 0:
                    reason = f"label {label} is negative"
        if reason:
            split.findings.append(Finding("malformed-line", reason, split=name, path=fields[0], line=lineno))
            continue
        path = os.path.join(str(data_root), fields[0]) if str(data_root) else fields[0]
        split.samples.append(VideoSample(path=path, label=label, line=lineno))
    if not split.samples and not split.findings:
        raise AnnotationError(f"{ann_file}: no videos listed")
    return split


match_class_names = describe_matches  # each name's match against the model's classes, for the report

def _name_findings(matches: Sequence[dict[str, Any]], what: str, against: str, split: Optional[str],
                   path: Callable[[dict[str, Any]], str]) -> list[Finding]:
    """``unknown-class`` problems for the names that match nothing, ``loose-class-match`` warnings."""
    out = []
    for m in matches:
        if m["match"] is None:
            hint = f"; closest: {', '.join(repr(x) for x in m['suggestions'])}" if m["suggestions"] else ""
            out.append(Finding("unknown-class", f"{what} {m['name']!r} is not one of {against}{hint}",
                               split=split, path=path(m)))
        elif m["match"] == "loose":
            out.append(Finding("loose-class-match", f"{what} {m['name']!r} taken as class {m['index']} "
                               f"{m['class_name']!r} of {against}", level="warning", split=split, path=path(m),
                               label=m["index"]))
    return out


def load_folder_split(name: str, folder: PathLike, reference: Optional[Sequence[str]] = None, *,
                      aliases: Optional[dict[str, int]] = None
                      ) -> tuple[Split, list[dict[str, Any]], list[Finding]]:
    """A folder of class sub-folders; with ``reference`` class names, labels are the matched names' positions
    (unmatched folders are ``unknown-class`` problems, their videos unlabelled). Returns the split, the name
    matches and the warnings (loose matches, classes without a folder)."""
    from .data.lists import scan_class_folders
    samples, folders = scan_class_folders(folder)
    split = Split(name=name, source=str(folder), samples=list(samples), kind="folder", data_root=str(folder),
                  folder_names=list(folders), folder_labels=list(range(len(folders))))
    if reference is None:
        return split, [], []
    matches = match_class_names(folders, reference, aliases=aliases)
    for m in matches:
        m["of"] = "class folder"
    findings = _name_findings(matches, "class folder", "the class names", name,
                              lambda m: os.path.join(str(folder), m["name"]))
    split.findings += [f for f in findings if f.level == "problem"]
    warnings = [f for f in findings if f.level == "warning"]
    matched = {m["index"] for m in matches if m["index"] is not None}
    if len(matched) < len(reference):
        missing = [n for i, n in enumerate(reference) if i not in matched]
        shown = ", ".join(repr(n) for n in missing[:5]) + (", ..." if len(missing) > 5 else "")
        warnings.append(Finding("classes-without-folder", f"{len(missing)} of {len(reference)} classes have no "
                                f"class folder: {shown}", level="warning", split=name))
    remap = [m["index"] for m in matches]
    split.folder_labels = remap
    split.samples = [VideoSample(s.path, None if s.label is None else remap[s.label], s.line) for s in samples]
    return split, matches, warnings


def model_classes(name: str) -> ModelClasses:
    """A preset's or one of our .safetensors checkpoints' protocol and classes, without loading any weights."""
    from .checkpoint import config_from_metadata, pretrained_cfg_from_metadata, read_metadata
    from .errors import UnknownModelError
    from .factory import known_class_names
    from .zoo import get_preset
    try:
        preset = get_preset(name)
    except UnknownModelError:
        if not os.path.isfile(name):
            raise
        preset = None
    checkpoint_names = None
    if preset is not None:
        cfg, protocol = preset.config, preset.protocol
    else:
        meta = read_metadata(name)
        cfg = config_from_metadata(meta, name)
        if cfg is None:
            raise CheckpointError(f"{name}: not one of our .safetensors checkpoints (which record their classes); "
                                  "name a preset (`uniformerv2 list`), or give --num-classes or --labels")
        protocol, checkpoint_names = pretrained_cfg_from_metadata(meta, cfg)
        protocol = protocol or Protocol(int(cfg.t_size), int(cfg.input_resolution))
    names, source = known_class_names(int(cfg.num_classes), checkpoint_names=checkpoint_names, preset=preset)
    return ModelClasses(name=str(name), protocol=protocol, num_classes=int(cfg.num_classes),
                        class_names=None if names is None else list(names), class_names_source=source)


def model_aliases(model: ModelClasses) -> Optional[dict[str, int]]:
    """Other datasets' names for a Kinetics-710 model's classes (MMAction2's channel maps), else None."""
    if model.num_classes != 710:
        return None
    from .data.labels import kinetics710_aliases
    return kinetics710_aliases()


def labels_against_model(label_names: Sequence[str], source: str, model: ModelClasses
                         ) -> tuple[list[dict[str, Any]], list[Finding]]:
    """A label map's names against the classes a model scores: the matches, ``unknown-class`` problems (a class the
    model cannot score) and ``loose-class-match`` warnings."""
    if model.class_names is None:
        if len(label_names) != model.num_classes:
            return [], [Finding("unknown-class", f"{len(label_names)} class names, but the model has "
                                f"{model.num_classes} classes and names none of them", path=source)]
        return [], []
    matches = match_class_names(label_names, model.class_names, aliases=model_aliases(model))
    for m in matches:
        m["of"] = "label map"
    return matches, _name_findings(matches, "class", f"the model's {model.num_classes} classes", None,
                                   lambda m: source)


# ------------------------------------------------------------------------------------------- one video


@lru_cache(maxsize=64)
def _area_matrix(n_in: int, n_out: int) -> np.ndarray:
    """``[n_out, n_in]`` weights of area resampling (each output cell the mean of the input it covers)."""
    edges = np.linspace(0.0, n_in, n_out + 1)
    m = np.zeros((n_out, n_in), dtype=np.float32)
    for o in range(n_out):
        a, b = edges[o], edges[o + 1]
        for i in range(int(math.floor(a)), min(n_in, int(math.ceil(b)))):
            m[o, i] = min(b, i + 1) - max(a, i)
        m[o] /= m[o].sum()
    return m


@lru_cache(maxsize=1)
def _dct_matrix() -> np.ndarray:
    k = np.arange(THUMB)
    d = np.sqrt(2.0 / THUMB) * np.cos(np.pi * (2 * k[None, :] + 1) * k[:, None] / (2 * THUMB))
    d[0] /= np.sqrt(2.0)
    return d.astype(np.float32)


def _thumbnail(frame: np.ndarray) -> np.ndarray:
    """float32 ``[32, 32]`` luma of a uint8 RGB frame, area-resampled (so any resolution gives the same)."""
    h, w = frame.shape[:2]
    # rows first, as one matrix product over the interleaved RGB values: 40x faster than the luma of every pixel
    rows = _area_matrix(h, THUMB) @ frame.reshape(h, w * 3).astype(np.float32)
    return (rows.reshape(THUMB, w, 3) @ _LUMA) @ _area_matrix(w, THUMB).T


def _bits_above_median(coefficients: np.ndarray) -> np.ndarray:
    flat = coefficients.reshape(-1)
    bits = flat > np.median(flat[1:])
    bits[0] = False  # the DC term (the mean brightness) says nothing about the picture
    return bits


def frame_hashes(frames: np.ndarray) -> tuple[np.ndarray, Optional[int]]:
    """Perceptual hashes of uint8 RGB frames ``[F, H, W, 3]`` (in time order): uint64 ``[F', 4]`` for the F' frames
    that are not a uniform colour, and the 64-bit hash of their mean (None when every frame is uniform)."""
    d = _dct_matrix()
    thumbs = [t for t in (_thumbnail(f) for f in frames) if t.std() >= FLAT_STD]
    if not thumbs:
        return np.zeros((0, 4), dtype=np.uint64), None
    words = []
    for t in thumbs:
        c = (d @ t @ d.T)[:FRAME_BLOCK, :FRAME_BLOCK]
        words.append(np.packbits(_bits_above_median(c)).view(">u8").astype(np.uint64))
    mean = np.mean(thumbs, axis=0)
    key = np.packbits(_bits_above_median((d @ mean @ d.T)[:8, :8])).view(">u8").astype(np.uint64)[0]
    return np.stack(words), int(key)


_POPCOUNT8 = np.array([bin(i).count("1") for i in range(256)], dtype=np.uint8)


def _popcount(x: np.ndarray) -> np.ndarray:
    """Set bits of each uint64 (``np.bitwise_count`` where numpy has it, numpy >= 2.0)."""
    if hasattr(np, "bitwise_count"):
        return np.bitwise_count(x)
    x = np.ascontiguousarray(x, dtype=np.uint64)
    return _POPCOUNT8[x.view(np.uint8)].reshape(x.shape + (8,)).sum(-1, dtype=np.int64)


def _one_way_score(a: np.ndarray, b: np.ndarray) -> float:
    """Median over ``a``'s frames of the smallest fraction of differing bits against ``b``'s frames, or against a
    moment between two consecutive frames of ``b`` (only the bits those two agree on count)."""
    direct = _popcount((a[:, None] ^ b[None]) & _WORD_MASK).sum(-1) / FRAME_BITS  # [Na, Nb]
    best = direct.min(1)
    if len(b) > 1:
        agree = ~(b[:-1] ^ b[1:]) & _WORD_MASK                                      # [Nb-1, 4]
        n_agree = _popcount(agree).sum(-1)
        differ = _popcount((a[:, None] ^ b[None, :-1]) & agree[None]).sum(-1)       # [Na, Nb-1]
        between = np.where(n_agree[None] >= MIN_AGREE, differ / np.maximum(n_agree, 1)[None], np.inf)
        best = np.minimum(best, between.min(1))
    return float(np.median(best))


def near_score(a: np.ndarray, b: np.ndarray) -> float:
    """How far apart two videos' frame hashes are: 0 for the same frames, about 0.5 for unrelated videos; near
    duplicates score at most ``NEAR_THRESHOLD``. Symmetric; inf when either has no hashed frame."""
    if len(a) == 0 or len(b) == 0:
        return math.inf
    return min(_one_way_score(a, b), _one_way_score(b, a))


def _sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:  # a FIFO or a stuck network mount blocks here: the time-out covers it
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _looks_like_text(head: bytes) -> bool:
    if not head or b"\x00" in head:
        return False
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError as e:
        if e.start < len(head) - 4:  # only a multi-byte character cut at the end of the sample is forgiven
            return False
        text = head[:e.start].decode("utf-8")
    printable = sum(ch.isprintable() or ch in "\r\n\t" for ch in text)
    return printable >= 0.95 * max(1, len(text))


def _mp4_cut(path: str, size: int) -> Optional[str]:
    """Why an MP4/MOV file looks cut short (a top-level box running past the end, or no 'moov' index), if so."""
    boxes = []
    with open(path, "rb") as f:
        offset = 0
        while offset + 8 <= size:
            f.seek(offset)
            header = f.read(16)
            box_size, box_type = int.from_bytes(header[:4], "big"), header[4:8].decode("latin-1")
            if box_size == 1 and len(header) >= 16:
                box_size = int.from_bytes(header[8:16], "big")
            if not boxes and box_type != "ftyp":
                return None  # not an ISO media file
            boxes.append(box_type)
            if box_size == 0:
                break  # the last box, to the end of the file
            if box_size < 8:
                return None
            if offset + box_size > size:
                return (f"truncated: the file ends at byte {size} inside its {box_type!r} box, which needs "
                        f"{offset + box_size} bytes")
            offset += box_size
    if boxes and "moov" not in boxes:
        return "truncated or unfinished: no 'moov' index (the recording or the copy did not finish)"
    return None


def _stream_types(path: str) -> list[str]:
    import av
    try:
        with av.open(path, metadata_errors="ignore") as container:
            return [s.type for s in container.streams]
    except Exception:  # noqa: BLE001 - only to word the message
        return []


def _open_failure(path: str, size: int, reason: str) -> tuple[str, str]:
    """(kind, detail) of a file that :func:`~uniformerv2.data.open_video` refused."""
    if reason.startswith("empty file"):
        return "empty", reason
    if reason.startswith("no video stream"):
        types = sorted(set(_stream_types(path)))
        return "no-video-stream", reason + (f" (streams: {', '.join(types)})" if types else " (no streams)")
    if reason.startswith("zero frames"):
        return "no-frames", reason
    if reason.startswith("truncated"):
        return "truncated", reason
    if reason.startswith("not a readable video"):
        with open(path, "rb") as f:
            head = f.read(4096)
        if _looks_like_text(head):
            return "not-a-video", f"a text file, not a video (starts {head[:40].decode('utf-8', 'replace')!r})"
        cut = _mp4_cut(path, size)
        if cut:
            return "truncated", cut
        return "unreadable", reason
    return "decode-error", reason


class _ProbeReader(PyAVReader):
    """The PyAV reader of the test views, noting the display rotation and coded size of the frames it converts."""

    rotation = 0
    coded: tuple[int, int] = (0, 0)

    def _to_rgb(self, frame: Any) -> np.ndarray:
        self.rotation = int(round(getattr(frame, "rotation", 0) or 0)) % 360
        self.coded = (frame.width, frame.height)
        return frame_to_rgb(frame)


def inspect_video(path: str, protocol: Protocol = DEFAULT_PROTOCOL) -> VideoInfo:
    """Open one file, decode the frames ``protocol`` samples, and record what it is (or why it is unusable)."""
    t0 = time.perf_counter()
    info = VideoInfo(path=path)

    def fail(kind: str, detail: str) -> VideoInfo:
        info.kind, info.error, info.seconds = kind, detail, time.perf_counter() - t0
        return info

    try:
        st = os.stat(path)
    except FileNotFoundError:
        return fail("missing", "no such file")
    except OSError as e:
        return fail("unreadable", f"cannot read ({e.strerror or e})")
    if stat.S_ISDIR(st.st_mode):
        return fail("unreadable", "a directory, not a video file")
    info.size = st.st_size
    if info.size == 0 and stat.S_ISREG(st.st_mode):  # a FIFO or a device has no size: it is read like a file
        return fail("empty", "empty file (0 bytes)")
    try:
        info.sha256 = _sha256(path)
        reader = _ProbeReader(path, threads=False)  # one process per core: no FFmpeg threads on top
    except VideoDecodeError as e:
        return fail(*_open_failure(path, info.size, e.reason))
    except OSError as e:
        return fail("unreadable", f"cannot read ({e.strerror or e})")
    except Exception as e:  # noqa: BLE001 - whatever a decoder raises is this file's problem
        return fail("decode-error", f"{type(e).__name__}: {e}")
    try:
        info.frames, info.fps, info.codec = reader.num_frames, float(reader.fps), reader.codec_name
        times = reader.times
        n = reader.num_frames
        info.duration = float(times[-1]) * n / (n - 1) if n > 1 and times[-1] > 0 else n / max(info.fps, 1e-6)
        indices = np.unique(sample_test_indices(n, protocol))
        frames = reader.read(indices)
    except VideoDecodeError as e:
        return fail("truncated" if e.reason.startswith("truncated video") else "decode-error", e.reason)
    except Exception as e:  # noqa: BLE001
        return fail("decode-error", f"{type(e).__name__}: {e}")
    finally:
        reader.close()
    info.height, info.width = int(frames.shape[1]), int(frames.shape[2])
    info.coded_width, info.coded_height = reader.coded
    info.rotation = reader.rotation
    if n < protocol.frames:
        info.warnings.append(("few-frames", f"{n} frames, fewer than the {protocol.frames} of a clip"))
    info.hashes, info.key = frame_hashes(frames)
    if info.key is None:
        info.warnings.append(("blank", f"all {len(frames)} sampled frames are a uniform colour"))
    info.seconds = time.perf_counter() - t0
    return info


# ---------------------------------------------------------------------------------- worker processes


def _worker(conn: Any, protocol: dict[str, Any]) -> None:
    """A worker process: inspect the paths it is sent, one at a time, until it is sent None."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle; it ends the workers
    import av  # noqa: F401 - imported before the first video's clock starts, not during it
    import torch
    torch.set_num_threads(1)  # the frames' RGB conversion runs in this process alone: processes are the parallelism
    p = Protocol.from_dict(protocol)
    conn.send(("ready", None, None))
    while True:
        try:
            path = conn.recv()
        except (EOFError, OSError):
            return
        if path is None:
            return
        conn.send(("done", path, inspect_video(path, p)))


# BLAS and OpenMP pools of one thread in the workers: OpenBLAS threads spin while they wait, so on a loaded machine a
# small matrix product (the thumbnails) runs 10-60x slower with a pool per worker than with one thread; the
# variables must be in the environment before numpy is imported, i.e. when the worker (or its server) starts
_WORKER_ENV = {"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


@contextlib.contextmanager
def _worker_env() -> Iterator[None]:
    saved = {k: os.environ.get(k) for k in _WORKER_ENV}
    os.environ.update(_WORKER_ENV)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _context() -> Any:
    """Worker processes forked from a clean server process that has the package imported (fast to replace when
    one is killed, and no threads of this process are copied); spawn where there is no forkserver."""
    import multiprocessing
    try:
        ctx = multiprocessing.get_context("forkserver")
        ctx.set_forkserver_preload([__name__])
        return ctx
    except ValueError:
        return multiprocessing.get_context("spawn")


_START_TIMEOUT = 300  # seconds for a worker to import the package (torch): minutes on a loaded machine at worst


@dataclass
class _Slot:
    process: Any
    conn: Any
    ready: bool = False
    path: Optional[str] = None
    started: float = 0.0
    born: float = field(default_factory=time.monotonic)


def inspect_videos(paths: Sequence[str], protocol: Protocol = DEFAULT_PROTOCOL, *, workers: int = 2,
                   timeout: float = 60.0, progress: bool = True) -> dict[str, VideoInfo]:
    """:func:`inspect_video` of every path in ``workers`` processes; a file still running after ``timeout``
    seconds is a ``timeout`` problem (its worker is killed and replaced), a worker that dies is a ``crash``."""
    from multiprocessing.connection import wait

    from tqdm.auto import tqdm
    if workers < 1:
        raise UsageError(f"workers must be at least 1, got {workers}")
    if not timeout > 0:
        raise UsageError(f"timeout must be positive, got {timeout}")
    ctx = _context()
    todo = collections.deque(dict.fromkeys(paths))
    results: dict[str, VideoInfo] = {}
    total = len(todo)
    failed_starts = 0

    def start() -> _Slot:
        parent, child = ctx.Pipe()
        process = ctx.Process(target=_worker, args=(child, protocol.to_dict()), daemon=True,
                              name="uniformerv2-check")
        with _worker_env():  # the first start also starts the fork server, whose environment the workers inherit
            process.start()
        child.close()
        return _Slot(process, parent)

    def stop(slot: _Slot) -> None:
        if slot.process.is_alive():
            slot.process.kill()
        slot.process.join(5)
        slot.conn.close()

    slots = [start() for _ in range(min(workers, total))]
    bar = tqdm(total=total, unit="video", desc="checking", disable=not progress, dynamic_ncols=True,
               file=sys.stderr)
    try:
        while len(results) < total:
            for slot in slots:
                if slot.ready and slot.path is None and todo:
                    slot.path, slot.started = todo.popleft(), time.monotonic()
                    slot.conn.send(slot.path)
            busy = [s.started + timeout for s in slots if s.path is not None]
            wait_s = max(0.0, min(busy) - time.monotonic()) if busy else 1.0
            ready = wait([s.conn for s in slots], timeout=wait_s)
            for i, slot in enumerate(slots):
                if slot.conn not in ready:
                    continue
                try:
                    what, path, info = slot.conn.recv()
                except (EOFError, OSError):  # the worker died: a decoder crash on this file, or a failed start
                    slot.process.join(5)
                    code = slot.process.exitcode
                    if slot.path is not None:
                        how = f"signal {-code}" if code is not None and code < 0 else f"exit status {code}"
                        results[slot.path] = VideoInfo(path=slot.path, kind="crash",
                                                       error=f"the decoder crashed ({how})")
                        bar.update()
                    elif not slot.ready:
                        failed_starts += 1
                        if failed_starts > 3:
                            raise UniFormerV2Error(
                                "the check's worker processes could not start (a script that runs the check must "
                                "do so under `if __name__ == '__main__':`, as multiprocessing requires)") from None
                    stop(slot)
                    slots[i] = start()
                    continue
                if what == "ready":
                    slot.ready = True
                else:
                    results[path] = info
                    slot.path = None
                    bar.update()
            now = time.monotonic()
            for i, slot in enumerate(slots):
                if not slot.ready and now - slot.born > _START_TIMEOUT:
                    raise UniFormerV2Error(f"the check's worker processes did not start within {_START_TIMEOUT} s")
                if slot.path is not None and now - slot.started >= timeout:
                    results[slot.path] = VideoInfo(path=slot.path, kind="timeout", seconds=now - slot.started,
                                                   error=f"gave up after {timeout:g} s (the decoder or the file "
                                                         "system hangs on it)")
                    bar.update()
                    stop(slot)
                    slots[i] = start()
    finally:
        bar.close()
        for slot in slots:
            try:
                if slot.path is None and slot.process.is_alive():
                    slot.conn.send(None)
                    slot.process.join(2)
            except (OSError, ValueError):
                pass
            stop(slot)
    return results


# -------------------------------------------------------------------------------------------- the check


def _near_pairs(reps: list[VideoInfo]) -> dict[tuple[int, int], float]:
    """Near-duplicate pairs ``(i, j)``, i < j, among files of different content, with their scores."""
    usable = [i for i, v in enumerate(reps) if v.key is not None and v.hashes is not None and len(v.hashes)]
    keys = np.array([reps[i].key for i in usable], dtype=np.uint64)
    pairs: dict[tuple[int, int], float] = {}
    rows, cols = 256, 4096  # tiles of the upper triangle that stay in cache: ~2.5 ns a pair, a minute for 200k files
    for r0 in range(0, len(keys), rows):
        block = keys[r0:r0 + rows, None]
        for c0 in range(r0, len(keys), cols):
            close = _popcount(block ^ keys[None, c0:c0 + cols]) <= KEY_THRESHOLD
            for r, c in zip(*np.nonzero(close)):
                a, b = r0 + int(r), c0 + int(c)
                if a < b:
                    i, j = usable[a], usable[b]
                    score = near_score(reps[i].hashes, reps[j].hashes)
                    if score <= NEAR_THRESHOLD:
                        pairs[(i, j)] = score
    return pairs


def check_dataset(splits: Sequence[Split], *, protocol: Protocol = DEFAULT_PROTOCOL,
                  num_classes: Optional[int] = None, num_classes_source: Optional[str] = None,
                  class_names: Optional[Sequence[str]] = None, name_matches: Sequence[dict[str, Any]] = (),
                  findings: Sequence[Finding] = (), workers: Optional[int] = None, timeout: float = 60.0,
                  min_per_class: int = 5, progress: bool = True) -> CheckReport:
    """Check every video of ``splits`` (the first is the training list; leakage is reported on the earlier list's
    entry) and their labels; ``num_classes`` defaults to the class names', else the largest label + 1."""
    t0 = time.perf_counter()
    if not splits:
        raise UsageError("no lists to check")
    names = [s.name for s in splits]
    if len(set(names)) != len(names):
        raise UsageError(f"list names must differ, got {names}")
    workers = workers if workers is not None else min(8, os.cpu_count() or 1)
    paths = [_key(s.path) for split in splits for s in split.samples]
    videos = inspect_videos(paths, protocol, workers=workers, timeout=timeout, progress=progress) if paths else {}
    problems: list[Finding] = [f for s in splits for f in s.findings]
    problems += [f for f in findings if f.level == "problem"]
    warnings: list[Finding] = [f for f in findings if f.level == "warning"]

    def add(kind: str, detail: str, split: Split, i: int, related: Sequence[str] = (), level: str = "problem"
            ) -> None:
        s = split.samples[i]
        (problems if level == "problem" else warnings).append(
            Finding(kind, detail, level=level, split=split.name, path=s.path, line=s.line, label=s.label,
                    related=list(related), entry=i))

    # the files: unusable ones, and their warnings
    for split in splits:
        for i, s in enumerate(split.samples):
            v = videos[_key(s.path)]
            if not v.ok:
                add(v.kind or "decode-error", v.error or "", split, i)
            for kind, detail in v.warnings:
                add(kind, detail, split, i, level="warning")

    # labels
    labelled = [s.label for split in splits for s in split.samples if s.label is not None]
    if num_classes is None and class_names is not None:
        num_classes, num_classes_source = len(class_names), num_classes_source or "the class names"
    if num_classes is None and labelled:
        num_classes, num_classes_source = max(labelled) + 1, "inferred: the largest label + 1"
    class_counts: dict[str, list[int]] = {}
    for split in splits:
        unlabelled = [i for i, s in enumerate(split.samples) if s.label is None]
        if split.kind == "list" and unlabelled and len(unlabelled) < len(split.samples):
            for i in unlabelled:
                add("no-label", "no label, in a list whose other entries have one", split, i)
        if num_classes is None:
            continue
        counts = [0] * num_classes
        for i, s in enumerate(split.samples):
            if s.label is None:
                continue
            if not 0 <= s.label < num_classes:
                add("label-out-of-range", f"label {s.label} outside [0, {num_classes}) ({num_classes_source})",
                    split, i)
            elif videos[_key(s.path)].ok:
                counts[s.label] += 1
        if split.kind == "list" and not any(s.label is not None for s in split.samples):
            continue  # an unlabelled list (videos to predict) has no classes to count
        class_counts[split.name] = counts
        if split.folder_labels is not None:  # a folder's classes are its folders, not every class of a model
            expected = sorted({c for c in split.folder_labels if c is not None and c < num_classes})
        else:
            expected = list(range(num_classes))
        for c in expected:
            what = _class_text(c, class_names)
            if counts[c] == 0:
                problems.append(Finding("empty-class", f"class {what} has no usable video", split=split.name,
                                        label=c))
            elif counts[c] < min_per_class:
                warnings.append(Finding("small-class", f"class {what} has {counts[c]} usable video"
                                        f"{'s' if counts[c] != 1 else ''} (fewer than {min_per_class})",
                                        level="warning", split=split.name, label=c))
        nonzero = [counts[c] for c in expected if counts[c]]
        if len(nonzero) > 1 and max(nonzero) >= 10 * min(nonzero):
            warnings.append(Finding("imbalance", f"class sizes range from {min(nonzero)} to {max(nonzero)} videos "
                                    f"({max(nonzero) / min(nonzero):.0f}x)", level="warning", split=split.name))

    # duplicates: one representative file per content (sha256), then near pairs between representatives
    usable = {k: v for k, v in videos.items() if v.ok}
    by_sha: dict[str, list[str]] = collections.defaultdict(list)
    for k, v in usable.items():
        by_sha[v.sha256 or k].append(k)
    shas = list(by_sha)
    reps = [usable[by_sha[h][0]] for h in shas]
    near = _near_pairs(reps)
    near_of: dict[str, dict[str, float]] = collections.defaultdict(dict)
    for (i, j), score in near.items():
        near_of[shas[i]][shas[j]] = score
        near_of[shas[j]][shas[i]] = score

    def content(s: VideoSample) -> Optional[str]:
        v = usable.get(_key(s.path))
        return None if v is None else (v.sha256 or _key(s.path))

    for split in splits:
        seen: dict[str, int] = {}
        for i, s in enumerate(split.samples):
            h = content(s)
            if h is None:
                continue
            if h in seen:
                first = split.samples[seen[h]]
                how = ("the same file, listed again" if _key(first.path) == _key(s.path)
                       else "the same bytes")
                add("duplicate", f"{how} as {_entry_text(split, first)}", split, i, [first.path])
            else:
                earlier = [(score, seen[g]) for g, score in near_of.get(h, {}).items() if g in seen]
                if earlier:
                    score, j = min(earlier)
                    first = split.samples[j]
                    add("near-duplicate", f"the same content as {_entry_text(split, first)}, "
                        f"score {score:.3f} <= {NEAR_THRESHOLD}", split, i, [first.path])
                seen[h] = i
    for a, split in enumerate(splits):
        for later in splits[a + 1:]:
            in_later: dict[str, list[VideoSample]] = collections.defaultdict(list)
            for s in later.samples:
                h = content(s)
                if h is not None:
                    in_later[h].append(s)
            for i, s in enumerate(split.samples):
                h = content(s)
                if h is None:
                    continue
                hits = [(-1.0, x) for x in in_later.get(h, [])]  # the same bytes first
                hits += [(score, x) for g, score in near_of.get(h, {}).items() for x in in_later.get(g, [])]
                if hits:
                    score, x = min(hits, key=lambda t: t[0])
                    how = (("the same file" if _key(x.path) == _key(s.path) else "the same bytes") if score < 0
                           else f"a near duplicate, score {score:.3f}")
                    more = f", and {len(hits) - 1} more" if len(hits) > 1 else ""
                    add("leakage", f"also in {later.name}: {_entry_text(later, x)}, {how}{more}", split, i,
                        sorted({y.path for _, y in hits}))

    exact_groups = [sorted(by_sha[h]) for h in shas if len(by_sha[h]) > 1]
    near_pairs = [{"a": reps[i].path, "b": reps[j].path, "score": round(score, 4)} for (i, j), score in near.items()]
    order = {k: n for n, k in enumerate(PROBLEM_KINDS)}
    split_order = {s.name: n for n, s in enumerate(splits)}
    problems.sort(key=lambda f: (split_order.get(f.split or "", -1), f.line or 0, order.get(f.kind, 99)))
    return CheckReport(protocol=protocol, splits=list(splits), videos=videos, problems=problems, warnings=warnings,
                       num_classes=num_classes, num_classes_source=num_classes_source,
                       class_names=None if class_names is None else list(class_names), class_counts=class_counts,
                       name_matches=list(name_matches), exact_groups=exact_groups, near_pairs=near_pairs,
                       seconds=time.perf_counter() - t0, workers=workers, timeout=timeout)


def _class_text(c: int, class_names: Optional[Sequence[str]]) -> str:
    return f"{c} {class_names[c]!r}" if class_names is not None and c < len(class_names) else str(c)


def _entry_text(split: Split, s: VideoSample) -> str:
    return f"{s.path}" + (f" ({split.name} line {s.line})" if s.line else f" ({split.name})")


# --------------------------------------------------------------------------------------------- reports


def format_report(report: CheckReport, max_lines: int = 60) -> str:
    """The terminal report: what was checked, every problem (up to ``max_lines``), the warnings by kind."""
    lines = []
    per_split = ", ".join(f"{s.name} {len(s.samples)}" for s in report.splits)
    usable = sum(v.ok for v in report.videos.values())
    lines.append(f"checked {len(report.videos)} files ({per_split} entries) in {report.seconds:.1f} s with "
                 f"{report.workers} worker{'s' if report.workers != 1 else ''}; {usable} usable")
    lines.append(f"decoded at the frames of the test protocol: {report.protocol.describe()}")
    if report.num_classes is not None:
        lines.append(f"classes: {report.num_classes} ({report.num_classes_source})")
    for name, counts in report.class_counts.items():
        nonzero = [c for c in counts if c]
        if nonzero:
            lines.append(f"  {name}: {sum(counts)} usable labelled videos, {len(nonzero)} classes with videos, "
                         f"{min(nonzero)}-{max(nonzero)} per class (median {int(np.median(nonzero))})")
    if report.problems:
        lines.append("")
        summary = ", ".join(f"{n} {k}" for k, n in report.counts(report.problems).items())
        lines.append(f"{len(report.problems)} problem{'s' if len(report.problems) != 1 else ''}: {summary}")
        width = max(len(f.kind) for f in report.problems)
        for f in report.problems[:max_lines]:
            lines.append(f"  {f.kind.ljust(width)}  {f.where()}: {f.detail}")
        if len(report.problems) > max_lines:
            lines.append(f"  ... and {len(report.problems) - max_lines} more (all in check.json and check.md)")
    if report.warnings:
        lines.append("")
        summary = ", ".join(f"{n} {k}" for k, n in report.counts(report.warnings).items())
        lines.append(f"{len(report.warnings)} warning{'s' if len(report.warnings) != 1 else ''}: {summary}")
        shown: collections.Counter = collections.Counter()
        for f in report.warnings:
            shown[f.kind] += 1
            if shown[f.kind] <= 3:
                lines.append(f"  {f.kind}  {f.where()}: {f.detail}")
            elif shown[f.kind] == 4:
                lines.append(f"  {f.kind}  ... (all in check.json)")
    lines.append("")
    n = len(report.problems)
    lines.append("no problems found" if report.ok else f"{n} problem{'s' if n != 1 else ''} found")
    return "\n".join(lines)


def _values(report: CheckReport, attr: str) -> list[float]:
    return [float(getattr(v, attr)) for v in report.videos.values() if v.ok and getattr(v, attr) is not None]


def _write_histograms(report: CheckReport, out_dir: Path) -> dict[str, Path]:
    """Duration, fps, resolution and class-count charts (only those with data)."""
    from .plots import _figure, _save
    written: dict[str, Path] = {}
    for attr, name, xlabel in (("duration", "durations.png", "duration (s)"), ("fps", "fps.png", "frames per second")):
        values = _values(report, attr)
        if not values:
            continue
        fig = _figure(6, 3.5)
        ax = fig.add_subplot()
        ax.hist(values, bins=min(40, max(5, len(set(np.round(values, 2))))), color="tab:blue", edgecolor="white")
        ax.set_xlabel(xlabel)
        ax.set_ylabel("videos")
        ax.set_title(f"{xlabel.split(' (')[0]} of {len(values)} usable videos")
        ax.grid(alpha=0.3)
        fig.tight_layout()
        written[attr] = _save(fig, out_dir / name)
    sizes = collections.Counter(f"{v.width}x{v.height}" for v in report.videos.values() if v.ok)
    if sizes:
        top = sizes.most_common(15)
        fig = _figure(6, 0.6 + 0.3 * len(top) + 1)
        ax = fig.add_subplot()
        ax.barh([k for k, _ in top][::-1], [n for _, n in top][::-1], color="tab:green")
        ax.set_xlabel("videos")
        ax.set_title("resolution (width x height as shown)" + (f", top 15 of {len(sizes)}" if len(sizes) > 15
                                                                 else ""))
        fig.tight_layout()
        written["resolution"] = _save(fig, out_dir / "resolutions.png")
    if report.class_counts:
        n = max(len(c) for c in report.class_counts.values())
        fig = _figure(min(16, max(6, 0.25 * n + 2)), 4)
        ax = fig.add_subplot()
        width = 0.8 / len(report.class_counts)
        for k, (name, counts) in enumerate(report.class_counts.items()):
            ax.bar(np.arange(len(counts)) + k * width, counts, width=width, label=name)
        ax.set_xlabel("class")
        ax.set_ylabel("usable videos")
        ax.set_title("videos per class")
        if n <= 40:
            labels = [str(c) if report.class_names is None else report.class_names[c][:20] for c in range(n)]
            ax.set_xticks(np.arange(n) + 0.4 - width / 2, labels=labels, rotation=90, fontsize=7)
        ax.legend()
        ax.grid(alpha=0.3, axis="y")
        fig.tight_layout()
        written["classes"] = _save(fig, out_dir / "class_counts.png")
    return written


def _md_cell(text: object) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _markdown(report: CheckReport, images: dict[str, Path]) -> str:
    r = report
    out = ["# Dataset check", ""]
    out.append(f"**{'No problems found' if r.ok else f'{len(r.problems)} problems found'}** "
               f"(uniformerv2 {__version__}, exit status {r.exit_status}).")
    out += ["", "| list | source | entries | entries with problems |", "|---|---|---|---|"]
    for s in r.splits:
        flagged = {f.entry for f in r.problems if f.split == s.name and f.entry is not None}
        out.append(f"| {s.name} | `{_md_cell(s.source)}` | {len(s.samples)} | {len(flagged)} |")
    out += ["", f"Files: {len(r.videos)}, usable: {sum(v.ok for v in r.videos.values())}. Decoded at the frames "
                f"of the test protocol ({r.protocol.describe()}) in {r.seconds:.1f} s with {r.workers} workers "
                f"(time-out {r.timeout:g} s per file)."]
    if r.num_classes is not None:
        out += ["", f"Classes: {r.num_classes} ({r.num_classes_source})."]
    for title, findings, legend in (("Problems", r.problems, PROBLEM_KINDS), ("Warnings", r.warnings, WARNING_KINDS)):
        if not findings:
            continue
        out += ["", f"## {title}", "", "| kind | count | meaning |", "|---|---|---|"]
        out += [f"| {k} | {n} | {legend.get(k, '')} |" for k, n in r.counts(findings).items()]
        out += ["", "| kind | list | line | path | detail |", "|---|---|---|---|---|"]
        for f in findings:
            out.append(f"| {f.kind} | {f.split or ''} | {f.line or ''} | {_md_cell(f.path or '')} | "
                       f"{_md_cell(f.detail)} |")
    if r.exact_groups or r.near_pairs:
        out += ["", "## Duplicates", ""]
        for g in r.exact_groups:
            out.append("- same bytes: " + ", ".join(f"`{_md_cell(p)}`" for p in g))
        for p in r.near_pairs:
            out.append(f"- near duplicates (score {p['score']}): `{_md_cell(p['a'])}`, `{_md_cell(p['b'])}`")
    if r.name_matches:
        out += ["", "## Class names", ""]
        for of in dict.fromkeys(m.get("of", "name") for m in r.name_matches):
            rows = [m for m in r.name_matches if m.get("of", "name") == of]
            other = [m for m in rows if m["match"] != "exact"]
            out.append(f"{len(rows) - len(other)} of {len(rows)} {of} names match a class name exactly.")
            if other:
                out += ["", f"| {of} | match | class |", "|---|---|---|"]
                for m in other:
                    what = (f"{m['index']} {m['class_name']}" if m["match"] else
                            "closest: " + ", ".join(m.get("suggestions") or ["none"]))
                    out.append(f"| {_md_cell(m['name'])} | {m['match'] or 'none'} | {_md_cell(what)} |")
            out.append("")
    ok = [v for v in r.videos.values() if v.ok]
    if ok:
        out += ["", "## Videos", "", "| | min | median | max |", "|---|---|---|---|"]
        for attr, label in (("frames", "frames"), ("fps", "fps"), ("duration", "duration (s)"),
                            ("width", "width"), ("height", "height")):
            vals = _values(r, attr)
            out.append(f"| {label} | {min(vals):.4g} | {float(np.median(vals)):.4g} | {max(vals):.4g} |")
        codecs = collections.Counter(v.codec for v in ok)
        rotations = collections.Counter(v.rotation for v in ok)
        out += ["", "Codecs: " + ", ".join(f"{k} {n}" for k, n in codecs.most_common()) + ". Rotation: " +
                ", ".join(f"{k} degrees {n}" for k, n in sorted(rotations.items())) + "."]
    if r.class_counts:
        out += ["", "## Classes", "", "| class | " + " | ".join(r.class_counts) + " |",
                "|---" * (len(r.class_counts) + 1) + "|"]
        n = max(len(c) for c in r.class_counts.values())
        for c in range(n):
            name = f"{c} {r.class_names[c]}" if r.class_names and c < len(r.class_names) else str(c)
            out.append(f"| {_md_cell(name)} | " + " | ".join(str(v[c]) for v in r.class_counts.values()) + " |")
    if images:
        out += ["", "## Histograms", ""]
        out += [f"![{k}]({p.name})" for k, p in images.items()]
    return "\n".join(out) + "\n"


def write_report(report: CheckReport, out_dir: PathLike) -> list[Path]:
    """``check.json``, ``check.md`` and the histogram PNGs in ``out_dir``, each written atomically."""
    out = Path(out_dir)
    images = _write_histograms(report, out)
    written = [atomic_write_text(out / "check.json", json.dumps(report.to_dict(), indent=1) + "\n"),
               atomic_write_text(out / "check.md", _markdown(report, images))]
    return written + list(images.values())


def _clean_path(source: Path) -> Path:
    return source.with_name(f"{source.stem}.clean{source.suffix}" if source.suffix else f"{source.name}.clean")


def write_clean_lists(report: CheckReport, *, drop_duplicates: bool = False, out_dir: Optional[PathLike] = None
                      ) -> list[tuple[Path, int, int]]:
    """Annotation lists without the entries that have problems (and, with ``drop_duplicates``, without the
    duplicates and the leaking entries), beside the originals as ``NAME.clean.txt``; a folder's list goes to
    ``out_dir``. Returns (path, entries kept, entries dropped) per list. An original is never overwritten."""
    results = []
    for split in report.splits:
        drop_entries = {f.entry for f in report.problems if f.split == split.name and f.entry is not None
                        and (drop_duplicates or f.kind not in DUPLICATE_KINDS)}
        drop_lines = {split.samples[i].line for i in drop_entries}
        drop_lines |= {f.line for f in split.findings if f.kind == "malformed-line"}
        kept = len(split.samples) - len(drop_entries)
        if split.kind == "list":
            source = Path(split.source)
            target = _clean_path(source)
            text = source.read_text(encoding="utf-8")
            lines = [line for n, line in enumerate(text.splitlines(keepends=True), start=1) if n not in drop_lines]
            body = "".join(lines)
        else:
            if out_dir is None:
                raise UsageError("a cleaned list of a class folder needs an output directory")
            target = Path(out_dir) / f"{Path(split.source).name or 'folder'}.clean.txt"
            body = "".join(f"{os.path.relpath(s.path, split.source)} {s.label}\n"
                           for i, s in enumerate(split.samples) if i not in drop_entries and s.label is not None)
            kept = body.count("\n")
            source = Path(split.source)
        if target.resolve() == source.resolve():  # pragma: no cover - a '.clean' name never equals its source
            raise UsageError(f"{target}: would overwrite the original list")
        atomic_write_text(target, body)
        results.append((target, kept, len(split.samples) - kept + len(
            [f for f in split.findings if f.kind == "malformed-line"])))
    return results
