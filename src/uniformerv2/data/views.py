"""Test-time views of a video: MMAction2 1.2.0's UniFormerV2 test pipeline, and a dataset of them.

:func:`read_test_views` is ``DecordInit -> UniformSample(clip_len, num_clips, test_mode=True) -> DecordDecode ->
Resize(scale=(-1, size)) -> ThreeCrop(size) | CenterCrop(size) -> FormatShape('NCTHW')`` (without the
normalisation, which MMAction2 does in the model's data preprocessor: see :func:`uniformerv2.data.normalize`), with
the protocol's ``frames``, ``clips``, ``crops`` and ``size``.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from typing import Any, Union

import numpy as np
import torch

from ..errors import VideoDecodeError
from ..protocol import SAMPLINGS, Protocol
from .decode import VideoReader, open_video
from .lists import VideoSample
from .sampling import original_test_sample, uniform_sample
from .transforms import (
    center_crop_box,
    center_crop_box_original,
    resize_short_side,
    resize_short_side_original,
    three_crop_boxes,
    three_crop_boxes_original,
)

__all__ = [
    "SAMPLINGS",
    "sample_test_indices",
    "view_crop_boxes",
    "views_from_frames",
    "read_test_views",
    "TestViewsDataset",
    "collate_views",
]

PathLike = Union[str, "os.PathLike[str]"]


def sample_test_indices(total_frames: int, protocol: Protocol) -> np.ndarray:
    """The frame indices ``[clips * frames]`` that :func:`read_test_views` decodes."""
    if protocol.sampling == "original":
        return original_test_sample(total_frames, protocol.frames, protocol.clips)
    return uniform_sample(total_frames, protocol.frames, protocol.clips, test_mode=True)


def view_crop_boxes(
    h: int, w: int, crops: int, size: int, sampling: str = "mmaction2"
) -> list[tuple[int, int, int, int]]:
    """Crop boxes ``(x1, y1, x2, y2)`` on the resized ``h x w`` frames, in view order."""
    if sampling == "original":
        return three_crop_boxes_original(h, w, size) if crops == 3 else [center_crop_box_original(h, w, size)]
    return three_crop_boxes(h, w, size) if crops == 3 else [center_crop_box(h, w, size)]


def views_from_frames(
    frames: np.ndarray | torch.Tensor, protocol: Protocol, *, inverse: np.ndarray | None = None
) -> torch.Tensor:
    """Resize, crop and lay out decoded frames as uint8 ``[crops * clips, 3, frames, size, size]``.

    ``frames``: uint8 ``[F, H, W, 3]``; frame ``inverse[j]`` is the ``j``-th sampled frame (default: ``F`` equals
    ``clips * frames`` and frames are in sampling order). Each distinct frame is resized once.
    """
    p = protocol
    x = np.ascontiguousarray(frames) if isinstance(frames, np.ndarray) else frames.detach().cpu().numpy()
    resize = resize_short_side_original if p.sampling == "original" else resize_short_side
    x = resize(x, p.size)
    h, w = x.shape[1], x.shape[2]
    boxes = view_crop_boxes(h, w, p.crops, p.size, p.sampling)
    n = p.clips * p.frames
    frame_of = list(range(n)) if inverse is None else np.asarray(inverse).reshape(-1).tolist()
    if len(frame_of) != n:
        raise ValueError(f"expected {n} sampled frames, got {len(frame_of)}")
    # numpy copies (single-threaded, no intra-op thread pool to wake up for a few hundred KB each)
    planar = np.ascontiguousarray(x.transpose(0, 3, 1, 2))  # [F, 3, H, W]: the crops below copy whole rows
    out = np.empty((p.crops * p.clips, 3, p.frames, p.size, p.size), dtype=np.uint8)
    grid = out.reshape(p.crops, p.clips, 3, p.frames, p.size, p.size)
    for c, (x1, y1, x2, y2) in enumerate(boxes):
        crop = planar[:, :, y1:y2, x1:x2]
        for j, f in enumerate(frame_of):
            grid[c, j // p.frames, :, j % p.frames] = crop[f]
    return torch.from_numpy(out)


def read_test_views(path: PathLike | VideoReader, protocol: Protocol, *, backend: str = "pyav") -> torch.Tensor:
    """uint8 test views ``[clips * crops, 3, frames, size, size]`` of a video, in MMAction2's view order.

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
    ``path`` may also be a video already opened (:func:`~uniformerv2.data.open_video`), which is left open.
    Raises :class:`VideoDecodeError` for a video that cannot be read.
    """
    if isinstance(path, VideoReader):
        return _test_views(path, protocol)
    with open_video(path, backend) as reader:
        return _test_views(reader, protocol)


def _test_views(reader: VideoReader, protocol: Protocol) -> torch.Tensor:
    """:func:`read_test_views` of an open video."""
    if reader.num_frames == 1:
        warnings.warn(
            f"{reader.path}: a single frame (a still image?): every clip repeats it, so nothing in it moves",
            stacklevel=3,
        )
    inds = sample_test_indices(reader.num_frames, protocol)
    unique, inverse = np.unique(inds, return_inverse=True)
    frames = reader.read(unique)
    return views_from_frames(frames, protocol, inverse=inverse.reshape(-1))


class TestViewsDataset(torch.utils.data.Dataset):
    """Test views of a list of videos, for a ``DataLoader`` (use ``collate_fn=collate_views``).

    Items are ``dict(index, path, label, views, error)``: ``views`` is :func:`read_test_views`'s uint8 tensor, or
    ``None`` with ``error`` the reason when the video cannot be decoded, so an evaluation can report it and go on.
    """

    __test__ = False  # not a pytest test class

    def __init__(self, samples: Sequence[VideoSample | str], protocol: Protocol, *, backend: str = "pyav") -> None:
        self.samples = [s if isinstance(s, VideoSample) else VideoSample(path=str(s)) for s in samples]
        self.protocol = protocol
        self.backend = backend

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> dict[str, Any]:
        sample = self.samples[index]
        views, error = None, None
        try:
            views = read_test_views(sample.path, self.protocol, backend=self.backend)
        except VideoDecodeError as e:
            error = e.reason
        except ImportError:
            raise  # a backend that is not installed is the caller's problem, not the video's
        except Exception as e:  # noqa: BLE001 - any other decoder failure is this video's problem
            error = f"{type(e).__name__}: {e}"
        return dict(index=index, path=sample.path, label=sample.label, views=views, error=error)


def collate_views(batch: Sequence[dict[str, Any]]) -> dict[str, list]:
    """Batch :class:`TestViewsDataset` items into a dict of lists (``views`` keeps ``None`` entries)."""
    keys = ("index", "path", "label", "views", "error")
    return {k: [item[k] for item in batch] for k in keys}
