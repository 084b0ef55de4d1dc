"""Test-time spatial transforms, as MMAction2 1.2.0 does them.

* :func:`resize_short_side` is ``Resize(scale=(-1, size))``: the output size follows mmcv's ``rescale_size``
  (``int(w * size / min(h, w) + 0.5)``) and the pixels follow ``cv2.resize(..., INTER_LINEAR)`` on uint8 images,
  i.e. bilinear with half-pixel centres and no antialiasing, *including OpenCV's 11-bit fixed-point arithmetic*
  (horizontal pass with 2048-scaled weights, vertical pass as in OpenCV's SIMD kernel). On the x86-64 OpenCV
  builds that MMAction2 runs with, the result is bit-identical to ``cv2.resize``; OpenCV's scalar fallback can
  differ by one grey level.
* :func:`three_crop_boxes` is ``ThreeCrop``: left, right, centre (landscape) or top, bottom, centre (portrait).
* :func:`center_crop_box` is ``CenterCrop``.
* :func:`normalize` is MMAction2's ``ActionDataPreprocessor`` with mean 114.75 and std 57.375 for every channel.

The original (SlowFast-based) code's test-time resize and crops, used by ``sampling="original"`` in
:func:`uniformerv2.data.read_test_views`, are :func:`resize_short_side_original` and
:func:`three_crop_boxes_original`.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar, overload

import numpy as np
import torch

MEAN = 114.75
STD = 57.375

Frames = np.ndarray | torch.Tensor

T = TypeVar("T")
R = TypeVar("R")

_POOL: ThreadPoolExecutor | None = None
_POOL_LOCK = threading.Lock()


def num_threads() -> int:
    """Threads for per-frame work: ``torch.get_num_threads()`` (1 in DataLoader workers), at most 8."""
    return max(1, min(8, torch.get_num_threads()))


def parallel_map(fn: Callable[[T], R], items: Sequence[T]) -> list[R]:
    """``[fn(x) for x in items]``, spread over :func:`num_threads` threads (numpy and FFmpeg release the GIL)."""
    threads = num_threads()
    if threads == 1 or len(items) < 2:
        return [fn(x) for x in items]
    global _POOL
    with _POOL_LOCK:
        if _POOL is None or _POOL._max_workers < threads:
            _POOL = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="uniformerv2-data")
        pool = _POOL
    return list(pool.map(fn, items))


_COEF_BITS = 11
_COEF_SCALE = 1 << _COEF_BITS  # OpenCV's INTER_RESIZE_COEF_SCALE


def rescale_size(h: int, w: int, size: int) -> tuple[int, int]:
    """``(new_h, new_w)`` as mmcv's ``rescale_size((w, h), (inf, size))``: the short side becomes ``size``."""
    if h <= 0 or w <= 0 or size <= 0:
        raise ValueError(f"cannot resize a {h}x{w} image to short side {size}")
    scale = min(math.inf / max(h, w), size / min(h, w))
    return int(h * float(scale) + 0.5), int(w * float(scale) + 0.5)


def _coefficients(src: int, dst: int, clamp_weight: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """OpenCV INTER_LINEAR source indices and 2048-scaled weights along one axis.

    OpenCV computes ``f = (float)((d + 0.5) * scale - 0.5)`` in single precision, with ``scale = 1 / (dst / src)``,
    and rounds each weight separately. Along x, positions outside the image take the border pixel with weight 0 on
    the neighbour; along y the two source rows are clamped into the image while the weights stay as computed.
    """
    scale = 1.0 / (np.float64(dst) / np.float64(src))
    f = ((np.arange(dst, dtype=np.float64) + 0.5) * scale - 0.5).astype(np.float32)
    i0 = np.floor(f).astype(np.int64)
    f = (f - i0.astype(np.float32)).astype(np.float32)
    if clamp_weight:
        low = i0 < 0
        f[low], i0[low] = 0, 0
        high = i0 >= src - 1
        f[high], i0[high] = 0, src - 1
    i1 = np.clip(i0 + 1, 0, src - 1)
    i0 = np.clip(i0, 0, src - 1)
    w1 = np.rint(f * np.float32(_COEF_SCALE)).astype(np.int32)
    w0 = np.rint((np.float32(1) - f) * np.float32(_COEF_SCALE)).astype(np.int32)
    return i0, i1, w0, w1


def _resize_cv2_linear(x: np.ndarray, out_h: int, out_w: int) -> np.ndarray:
    """uint8 ``[N, H, W, C]`` -> uint8 ``[N, out_h, out_w, C]``, OpenCV INTER_LINEAR in its fixed-point arithmetic.

    Horizontal pass ``S[x0] * a0 + S[x1] * a1`` (weights scaled by 2048), then OpenCV's SIMD vertical kernel:
    ``(((h0 >> 4) * b0) >> 16) + (((h1 >> 4) * b1) >> 16)``, rounded with ``(v + 2) >> 2``. Computed frame by frame
    so the int32 intermediates stay in cache; only the source rows the vertical pass reads are processed.
    """
    n, h, w, _ = x.shape
    x0, x1, a0, a1 = _coefficients(w, out_w, clamp_weight=True)
    y0, y1, b0, b1 = _coefficients(h, out_h, clamp_weight=False)
    rows = np.unique(np.concatenate([y0, y1]))
    remap = np.full(h, -1, dtype=np.int64)
    remap[rows] = np.arange(len(rows))
    ry0, ry1 = remap[y0], remap[y1]
    all_rows = len(rows) == h
    a0, a1 = a0[:, None], a1[:, None]
    b0, b1 = b0[:, None, None], b1[:, None, None]
    out = np.empty((n, out_h, out_w, x.shape[3]), dtype=np.uint8)

    def one(i: int) -> None:
        src = x[i] if all_rows else x[i, rows]
        horiz = np.take(src, x0, axis=1).astype(np.int32)
        horiz *= a0
        tmp = np.take(src, x1, axis=1).astype(np.int32)
        tmp *= a1
        horiz += tmp
        horiz >>= 4  # OpenCV's vertical SIMD kernel works on 16-bit values (v_shr<4>)
        r0 = np.take(horiz, ry0, axis=0)
        r0 *= b0
        r0 >>= 16  # v_mul_hi
        r1 = np.take(horiz, ry1, axis=0)
        r1 *= b1
        r1 >>= 16
        r0 += r1
        r0 += 2
        r0 >>= 2  # v_rshr_pack_u<2>; b0 + b1 = 2048 keeps it within 0..255
        out[i] = r0

    parallel_map(one, range(n))
    return out


@overload
def resize_short_side(frames: np.ndarray, size: int) -> np.ndarray: ...
@overload
def resize_short_side(frames: torch.Tensor, size: int) -> torch.Tensor: ...
def resize_short_side(frames: Frames, size: int) -> Frames:
    """Resize ``[..., H, W, 3]`` uint8 frames so the short side is ``size`` (MMAction2 ``Resize(scale=(-1, size))``).

    Returns the same type (numpy array or torch tensor) as given. Frames whose size does not change are returned
    as a copy (OpenCV copies them too).
    """
    is_numpy = isinstance(frames, np.ndarray)
    x = np.ascontiguousarray(frames) if isinstance(frames, np.ndarray) else frames.detach().cpu().contiguous().numpy()
    if x.dtype != np.uint8:
        raise TypeError(f"resize_short_side expects uint8 frames, got {x.dtype}")
    if x.ndim < 3:
        raise ValueError(f"resize_short_side expects [..., H, W, C] frames, got shape {tuple(x.shape)}")
    lead, (h, w, c) = x.shape[:-3], x.shape[-3:]
    new_h, new_w = rescale_size(h, w, size)
    if (new_h, new_w) == (h, w):
        out = x.copy()
    else:
        out = _resize_cv2_linear(x.reshape((-1, h, w, c)), new_h, new_w).reshape(lead + (new_h, new_w, c))
    return out if is_numpy else torch.from_numpy(out)


def three_crop_boxes(h: int, w: int, size: int) -> list[tuple[int, int, int, int]]:
    """MMAction2 ``ThreeCrop(crop_size=size)`` boxes ``(x1, y1, x2, y2)`` on an ``h x w`` image, in its order.

    The crop must span the image's short side (as after :func:`resize_short_side`): landscape (or square) images
    give left, right, centre; portrait images give top, bottom, centre. The step is ``(long - size) // 2``, so the
    second crop ends ``(long - size) % 2`` pixels before the image edge, as in MMAction2.
    """
    if size == h:
        step = (w - size) // 2
        offsets = [(0, 0), (2 * step, 0), (step, 0)]
    elif size == w:
        step = (h - size) // 2
        offsets = [(0, 0), (0, 2 * step), (0, step)]
    else:
        raise ValueError(f"ThreeCrop needs the crop size {size} to equal the image height or width ({h}x{w})")
    return [(x, y, x + size, y + size) for x, y in offsets]


def center_crop_box(h: int, w: int, size: int) -> tuple[int, int, int, int]:
    """MMAction2 ``CenterCrop(crop_size=size)`` box ``(x1, y1, x2, y2)``; offsets floor ``(side - size) / 2``."""
    left = (w - size) // 2
    top = (h - size) // 2
    return (left, top, left + size, top + size)


def normalize(views_uint8: torch.Tensor) -> torch.Tensor:
    """float32 ``(x - 114.75) / 57.375``, the normalisation of every UniFormerV2 config."""
    return (views_uint8.to(torch.float32) - MEAN) / STD


# ------------------------------------------------------------------------------------------------------------
# The original (SlowFast-based) code's test-time spatial transforms


@overload
def resize_short_side_original(frames: np.ndarray, size: int) -> np.ndarray: ...
@overload
def resize_short_side_original(frames: torch.Tensor, size: int) -> torch.Tensor: ...
def resize_short_side_original(frames: Frames, size: int) -> Frames:
    """The original code's ``random_short_side_scale_jitter(min=max=size)`` on uint8 ``[..., H, W, 3]`` frames.

    The long side becomes ``floor(long / short * size)`` (MMAction2 rounds), the pixels are
    ``torch.nn.functional.interpolate(mode="bilinear", align_corners=False)`` in float (the original resizes the
    normalised float frames, which is the same up to the final rounding to uint8 here); frames whose short side
    already equals ``size`` are unchanged.
    """
    is_numpy = isinstance(frames, np.ndarray)
    x = torch.from_numpy(np.ascontiguousarray(frames)) if isinstance(frames, np.ndarray) else frames
    h, w = x.shape[-3], x.shape[-2]
    if (w <= h and w == size) or (h <= w and h == size):
        out = x.clone()
    else:
        new_h, new_w = size, size
        if w < h:
            new_h = int(math.floor(float(h) / w * size))
        else:
            new_w = int(math.floor(float(w) / h * size))
        lead = x.shape[:-3]
        flat = x.reshape(-1, h, w, x.shape[-1]).permute(0, 3, 1, 2).to(torch.float32)
        res = torch.nn.functional.interpolate(flat, size=(new_h, new_w), mode="bilinear", align_corners=False)
        out = res.round_().clamp_(0, 255).to(torch.uint8).permute(0, 2, 3, 1).reshape(*lead, new_h, new_w, -1)
    return out.numpy() if is_numpy else out


def three_crop_boxes_original(h: int, w: int, size: int) -> list[tuple[int, int, int, int]]:
    """The original code's ``uniform_crop`` boxes for spatial indices 0, 1, 2, in that order.

    Left, centre, right for landscape or square images (top, centre, bottom for portrait ones); the centre offset
    is ``ceil((side - size) / 2)`` and the third crop touches the far edge (MMAction2: floor and ``2 * step``).
    """
    return [_uniform_crop_box(h, w, size, idx) for idx in (0, 1, 2)]


def center_crop_box_original(h: int, w: int, size: int) -> tuple[int, int, int, int]:
    """The original code's single-crop test view: ``uniform_crop`` with spatial index 1 (ceil offsets)."""
    return _uniform_crop_box(h, w, size, 1)


def _uniform_crop_box(h: int, w: int, size: int, spatial_idx: int) -> tuple[int, int, int, int]:
    y = int(math.ceil((h - size) / 2))
    x = int(math.ceil((w - size) / 2))
    if h > w:
        if spatial_idx == 0:
            y = 0
        elif spatial_idx == 2:
            y = h - size
    else:
        if spatial_idx == 0:
            x = 0
        elif spatial_idx == 2:
            x = w - size
    return (x, y, x + size, y + size)
