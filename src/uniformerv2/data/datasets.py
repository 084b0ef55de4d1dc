"""Test-time views of a video, video lists and label maps.

:func:`read_test_views` is MMAction2 1.2.0's UniFormerV2 test pipeline ``DecordInit -> UniformSample(clip_len,
num_clips, test_mode=True) -> DecordDecode -> Resize(scale=(-1, size)) -> ThreeCrop(size) | CenterCrop(size) ->
FormatShape('NCTHW')`` (without the normalisation, which MMAction2 does in the model's data preprocessor: see
:func:`uniformerv2.data.normalize`).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Optional, Sequence, Union

import numpy as np
import torch

from .decode import VideoDecodeError, open_video
from .sampling import original_test_sample, uniform_sample
from .transforms import (center_crop_box, center_crop_box_original, resize_short_side,
                         resize_short_side_original, three_crop_boxes, three_crop_boxes_original)

PathLike = Union[str, "os.PathLike[str]"]

SAMPLINGS = ("mmaction2", "original")
SHIPPED_LABEL_MAPS = ("k400", "k600", "k700", "k710", "mitv1")
VIDEO_EXTENSIONS = (".mp4", ".avi", ".mkv", ".webm", ".mov", ".m4v", ".mpg", ".mpeg", ".wmv", ".flv", ".3gp",
                    ".ts", ".ogv")


# -------------------------------------------------------------------------------------------- test-time views


def _check_protocol(clip_len: int, num_clips: int, num_crops: int, size: int, sampling: str) -> None:
    if sampling not in SAMPLINGS:
        raise ValueError(f"unknown sampling {sampling!r}; choose one of {', '.join(SAMPLINGS)}")
    if num_crops not in (1, 3):
        raise ValueError(f"num_crops must be 1 (CenterCrop) or 3 (ThreeCrop), got {num_crops}")
    for name, value in (("clip_len", clip_len), ("num_clips", num_clips), ("size", size)):
        if int(value) < 1:
            raise ValueError(f"{name} must be >= 1, got {value}")


def sample_test_indices(total_frames: int, clip_len: int, num_clips: int, sampling: str = "mmaction2") -> np.ndarray:
    """The frame indices ``[num_clips*clip_len]`` that :func:`read_test_views` decodes."""
    if sampling == "original":
        return original_test_sample(total_frames, clip_len, num_clips)
    return uniform_sample(total_frames, clip_len, num_clips, test_mode=True)


def view_crop_boxes(h: int, w: int, num_crops: int, size: int,
                    sampling: str = "mmaction2") -> list[tuple[int, int, int, int]]:
    """Crop boxes ``(x1, y1, x2, y2)`` on the resized ``h x w`` frames, in view order."""
    if sampling == "original":
        return three_crop_boxes_original(h, w, size) if num_crops == 3 else [center_crop_box_original(h, w, size)]
    return three_crop_boxes(h, w, size) if num_crops == 3 else [center_crop_box(h, w, size)]


def views_from_frames(frames: Union[np.ndarray, torch.Tensor], clip_len: int, num_clips: int, num_crops: int,
                      size: int, *, sampling: str = "mmaction2",
                      inverse: Optional[np.ndarray] = None) -> torch.Tensor:
    """Resize, crop and lay out decoded frames as uint8 ``[num_crops*num_clips, 3, clip_len, size, size]``.

    ``frames``: uint8 ``[F, H, W, 3]``; frame ``inverse[j]`` is the ``j``-th sampled frame (default: ``F`` equals
    ``num_clips*clip_len`` and frames are in sampling order). Each distinct frame is resized once.
    """
    _check_protocol(clip_len, num_clips, num_crops, size, sampling)
    x = np.ascontiguousarray(frames) if isinstance(frames, np.ndarray) else frames.detach().cpu().numpy()
    resize = resize_short_side_original if sampling == "original" else resize_short_side
    x = resize(x, size)
    h, w = x.shape[1], x.shape[2]
    boxes = view_crop_boxes(h, w, num_crops, size, sampling)
    n = num_clips * clip_len
    frame_of = list(range(n)) if inverse is None else np.asarray(inverse).reshape(-1).tolist()
    if len(frame_of) != n:
        raise ValueError(f"expected {n} sampled frames, got {len(frame_of)}")
    # numpy copies (single-threaded, no intra-op thread pool to wake up for a few hundred KB each)
    planar = np.ascontiguousarray(x.transpose(0, 3, 1, 2))  # [F, 3, H, W]: the crops below copy whole rows
    out = np.empty((num_crops * num_clips, 3, clip_len, size, size), dtype=np.uint8)
    grid = out.reshape(num_crops, num_clips, 3, clip_len, size, size)
    for c, (x1, y1, x2, y2) in enumerate(boxes):
        crop = planar[:, :, y1:y2, x1:x2]
        for j, f in enumerate(frame_of):
            grid[c, j // clip_len, :, j % clip_len] = crop[f]
    return torch.from_numpy(out)


def read_test_views(path: PathLike, clip_len: int, num_clips: int, num_crops: int, size: int, *,
                    backend: str = "pyav", sampling: str = "mmaction2") -> torch.Tensor:
    """uint8 test views ``[num_clips*num_crops, 3, clip_len, size, size]`` of a video, in MMAction2's view order.

    ``sampling="mmaction2"`` (default) is MMAction2 1.2.0's UniFormerV2 test pipeline: ``UniformSample`` in test
    mode, short side resized to ``size`` (OpenCV bilinear, mmcv rounding), then ``ThreeCrop`` (``num_crops=3``:
    left, right, centre, or top, bottom, centre for portrait video) or ``CenterCrop`` (``num_crops=1``). Views are
    crop-major: every clip of the first crop, then every clip of the second, ... (``FormatShape('NCTHW')``).

    ``sampling="original"`` is the original (SlowFast-based) code's test-time view: its temporal indices
    (:func:`uniformerv2.data.original_test_sample`), short side resized with ``torch.nn.functional.interpolate``
    and a floored long side, and ``uniform_crop`` boxes (left, centre, right, with ceil offsets; the single-crop
    view is the centre one). The views keep the crop-major order here (the original code orders them clip-major,
    which does not change an average over views).

    Frames are decoded with ``backend`` ('pyav', 'decord' or 'torchcodec'); the frame count is decord's (see
    :mod:`uniformerv2.data.decode`). Videos shorter than ``clip_len`` repeat frames as ``UniformSample`` does.
    Raises :class:`VideoDecodeError` for a video that cannot be read.
    """
    _check_protocol(clip_len, num_clips, num_crops, size, sampling)
    with open_video(path, backend) as reader:
        inds = sample_test_indices(reader.num_frames, clip_len, num_clips, sampling)
        unique, inverse = np.unique(inds, return_inverse=True)
        frames = reader.read(unique)
    return views_from_frames(frames, clip_len, num_clips, num_crops, size, sampling=sampling,
                             inverse=inverse.reshape(-1))


# --------------------------------------------------------------------------------------------------- datasets


class AnnotationError(ValueError):
    """A malformed annotation list or label map; the message names the file (and line)."""


@dataclass
class VideoSample:
    """One video of a list: its path and integer label (``None`` when the list has no labels)."""

    path: str
    label: Optional[int] = None


def read_annotation_list(ann_file: PathLike, data_root: PathLike = "") -> list[VideoSample]:
    """Read an MMAction2 video list: one ``relative/path.mp4 label`` per line, the label optional.

    Paths are joined to ``data_root`` (as MMAction2's ``data_prefix=dict(video=...)``); blank lines and lines
    starting with ``#`` are skipped. Paths may not contain whitespace (as in MMAction2). A malformed line raises
    :class:`AnnotationError` naming the file and line.
    """
    ann = Path(ann_file)
    if not ann.is_file():
        raise AnnotationError(f"{ann_file}: no such annotation file")
    try:
        text = ann.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise AnnotationError(f"{ann_file}: not a text file ({e.reason} at byte {e.start})") from e
    samples: list[VideoSample] = []
    for lineno, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        fields = stripped.split()
        if len(fields) > 2:
            raise AnnotationError(f"{ann_file}:{lineno}: expected 'path [label]', got {len(fields)} fields: "
                                  f"{stripped!r}")
        label = None
        if len(fields) == 2:
            try:
                label = int(fields[1])
            except ValueError:
                raise AnnotationError(f"{ann_file}:{lineno}: label {fields[1]!r} is not an integer") from None
            if label < 0:
                raise AnnotationError(f"{ann_file}:{lineno}: label {label} is negative")
        path = os.path.join(str(data_root), fields[0]) if str(data_root) else fields[0]
        samples.append(VideoSample(path=path, label=label))
    if not samples:
        raise AnnotationError(f"{ann_file}: no videos listed")
    return samples


def scan_class_folders(root: PathLike) -> tuple[list[VideoSample], list[str]]:
    """A folder-per-class layout ``root/<class>/**/<video>``: samples and class names (sorted; label = position).

    Video files are recognised by extension (``VIDEO_EXTENSIONS``, case-insensitive); hidden files and folders
    are ignored; samples are sorted by class, then path.
    """
    base = Path(root)
    if not base.is_dir():
        raise AnnotationError(f"{root}: not a directory")
    classes = sorted(d.name for d in base.iterdir() if d.is_dir() and not d.name.startswith("."))
    if not classes:
        raise AnnotationError(f"{root}: no class folders (expected {root}/<class name>/<video files>)")
    samples: list[VideoSample] = []
    for label, name in enumerate(classes):
        files = sorted(p for p in (base / name).rglob("*")
                       if p.is_file() and p.suffix.lower() in VIDEO_EXTENSIONS
                       and not any(part.startswith(".") for part in p.relative_to(base).parts))
        samples.extend(VideoSample(path=str(p), label=label) for p in files)
    if not samples:
        raise AnnotationError(f"{root}: no video files in its class folders")
    return samples, classes


def read_label_map(path_or_name: PathLike) -> list[str]:
    """Class names, one per line: a text file, or a shipped map 'k400', 'k600', 'k700', 'k710', 'mitv1'."""
    p = Path(path_or_name)
    if p.is_file():
        try:
            text = p.read_text(encoding="utf-8")
        except UnicodeDecodeError as e:
            raise AnnotationError(f"{path_or_name}: not a text file ({e.reason} at byte {e.start})") from e
        source = str(path_or_name)
    elif str(path_or_name) in SHIPPED_LABEL_MAPS:
        text = resources.files("uniformerv2").joinpath(f"labels/label_map_{path_or_name}.txt").read_text("utf-8")
        source = f"label map {path_or_name!r}"
    else:
        raise AnnotationError(f"{path_or_name}: no such label map file, and not one of the shipped label maps "
                              f"({', '.join(SHIPPED_LABEL_MAPS)})")
    names = [line.strip() for line in text.splitlines()]
    while names and not names[-1]:
        names.pop()
    for lineno, name in enumerate(names, start=1):
        if not name:
            raise AnnotationError(f"{source}:{lineno}: empty class name")
    if not names:
        raise AnnotationError(f"{source}: no class names")
    return names


class TestViewsDataset(torch.utils.data.Dataset):
    """Test views of a list of videos, for a ``DataLoader`` (use ``collate_fn=collate_views``).

    Items are ``dict(index, path, label, views, error)``: ``views`` is :func:`read_test_views`'s uint8 tensor, or
    ``None`` with ``error`` the reason when the video cannot be decoded, so an evaluation can report it and go on.
    """

    __test__ = False  # not a pytest test class

    def __init__(self, samples: Sequence[Union[VideoSample, str]], clip_len: int, num_clips: int, num_crops: int,
                 size: int, backend: str = "pyav", sampling: str = "mmaction2") -> None:
        _check_protocol(clip_len, num_clips, num_crops, size, sampling)
        self.samples = [s if isinstance(s, VideoSample) else VideoSample(path=str(s)) for s in samples]
        self.clip_len, self.num_clips, self.num_crops, self.size = clip_len, num_clips, num_crops, size
        self.backend, self.sampling = backend, sampling

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> dict[str, Any]:
        sample = self.samples[index]
        views, error = None, None
        try:
            views = read_test_views(sample.path, self.clip_len, self.num_clips, self.num_crops, self.size,
                                    backend=self.backend, sampling=self.sampling)
        except VideoDecodeError as e:
            error = e.reason
        except ImportError:
            raise  # a backend that is not installed is the caller's problem, not the video's
        except Exception as e:  # any other decoder failure is this video's problem
            error = f"{type(e).__name__}: {e}"
        return dict(index=index, path=sample.path, label=sample.label, views=views, error=error)


def collate_views(batch: Sequence[dict[str, Any]]) -> dict[str, list]:
    """Batch :class:`TestViewsDataset` items into a dict of lists (``views`` keeps ``None`` entries)."""
    keys = ("index", "path", "label", "views", "error")
    return {k: [item[k] for item in batch] for k in keys}
