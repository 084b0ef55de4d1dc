"""Perceptual hashes of video frames and the near-duplicate search over them.

Each decoded frame gets a 255-bit perceptual hash: the luma, area-resampled to 32x32, its 2-D DCT, and one bit per
coefficient of the 16x16 lowest frequencies (DC excluded): above or below their median. Resizing and re-encoding
barely move these bits. Trimming moves the sampled frames to other times; a frame of a trimmed copy then lies
between two consecutive sampled frames of the original, so it is compared with both: only the bits on which those
two agree count (see :func:`near_score`). Two videos are near duplicates when, for the median frame of one of them,
at most ``NEAR_THRESHOLD`` of the bits that count differ. Candidate pairs come first from a 64-bit hash of each
video's mean frame (all pairs, in tiles: about a minute for 200k videos; :func:`near_pairs`), so the frame-level
comparison runs only on pairs that look alike as a whole. Frames of a uniform colour (black, fades) carry no hash
and are left out of the comparison.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from functools import lru_cache

import numpy as np

__all__ = ["NEAR_THRESHOLD", "frame_hashes", "near_score", "near_pairs"]

THUMB = 32  # luma thumbnail side
FRAME_BLOCK = 16  # low-frequency DCT block of a frame hash: 16x16 coefficients -> 255 bits (DC left out)
FRAME_BITS = FRAME_BLOCK * FRAME_BLOCK - 1
FLAT_STD = 2.0  # grey levels: a thumbnail flatter than this is a uniform frame with no usable hash
NEAR_THRESHOLD = 0.14  # near duplicates: median fraction of differing (stable) bits at most this
KEY_THRESHOLD = 10  # candidate pairs: mean-frame hashes (63 bits) at most this far apart (copies: <= 8)
MIN_AGREE = 128  # two sampled frames agreeing on fewer bits are a cut, not a motion to interpolate
_WORD_MASK = np.array([(1 << 63) - 1] + [(1 << 64) - 1] * 3, dtype=np.uint64)  # drops the DC bit (the first)

_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)


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


def frame_hashes(frames: np.ndarray) -> tuple[np.ndarray, int | None]:
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
        agree = ~(b[:-1] ^ b[1:]) & _WORD_MASK  # [Nb-1, 4]
        n_agree = _popcount(agree).sum(-1)
        differ = _popcount((a[:, None] ^ b[None, :-1]) & agree[None]).sum(-1)  # [Na, Nb-1]
        between = np.where(n_agree[None] >= MIN_AGREE, differ / np.maximum(n_agree, 1)[None], np.inf)
        best = np.minimum(best, between.min(1))
    return float(np.median(best))


def near_score(a: np.ndarray, b: np.ndarray) -> float:
    """How far apart two videos' frame hashes are: 0 for the same frames, about 0.5 for unrelated videos; near
    duplicates score at most ``NEAR_THRESHOLD``. Symmetric; inf when either has no hashed frame."""
    if len(a) == 0 or len(b) == 0:
        return math.inf
    return min(_one_way_score(a, b), _one_way_score(b, a))


def near_pairs(keys: Sequence[int | None], hashes: Sequence[np.ndarray | None]) -> dict[tuple[int, int], float]:
    """Near-duplicate pairs ``(i, j)``, i < j, among videos given by their mean-frame keys and frame hashes (of
    different content: one video per sha256), with their scores; videos without a key or hashes are left out."""
    usable = [i for i, (k, h) in enumerate(zip(keys, hashes)) if k is not None and h is not None and len(h)]
    packed = np.array([keys[i] for i in usable], dtype=np.uint64)
    pairs: dict[tuple[int, int], float] = {}
    rows, cols = 256, 4096  # tiles of the upper triangle that stay in cache: ~2.5 ns a pair, a minute for 200k files
    for r0 in range(0, len(packed), rows):
        block = packed[r0 : r0 + rows, None]
        for c0 in range(r0, len(packed), cols):
            close = _popcount(block ^ packed[None, c0 : c0 + cols]) <= KEY_THRESHOLD
            for r, c in zip(*np.nonzero(close)):
                a, b = r0 + int(r), c0 + int(c)
                if a < b:
                    i, j = usable[a], usable[b]
                    score = near_score(hashes[i], hashes[j])  # type: ignore[arg-type]
                    if score <= NEAR_THRESHOLD:
                        pairs[(i, j)] = score
    return pairs
