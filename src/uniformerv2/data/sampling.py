"""Temporal sampling: MMAction2 1.2.0's ``UniformSample``, the original (SlowFast-based) code's test sampling, and
sliding windows over a video's timestamps (``timeline``, ``extract --mode windows``)."""

from __future__ import annotations

import numpy as np

from ..duration import video_duration

RNG = np.random.Generator | np.random.RandomState | None


def _check(total_frames: int, clip_len: int, num_clips: int) -> None:
    if int(clip_len) < 1 or int(num_clips) < 1:
        raise ValueError(f"clip_len and num_clips must be >= 1, got clip_len={clip_len}, num_clips={num_clips}")
    if int(total_frames) < 0:
        raise ValueError(f"total_frames must be >= 0, got {total_frames}")


def _randint(rng: RNG, low: int, high_inclusive: int) -> int:
    if rng is None:  # MMAction2 draws from numpy's global RandomState
        return int(np.random.randint(low, high_inclusive + 1))
    if isinstance(rng, np.random.RandomState):
        return int(rng.randint(low, high_inclusive + 1))
    return int(rng.integers(low, high_inclusive + 1))


def uniform_sample(
    total_frames: int, clip_len: int, num_clips: int = 1, *, test_mode: bool, rng: RNG = None
) -> np.ndarray:
    """Frame indices of MMAction2 ``UniformSample(clip_len, num_clips, test_mode)``, shape ``[num_clips*clip_len]``.

    The video's ``total_frames - 1`` frame intervals are cut into ``clip_len`` segments of ``seg = (N - 1) /
    clip_len`` frames; segment ``i`` starts at ``round(seg * i)`` (numpy's round half to even).

    * Test mode: clip ``k`` (of ``num_clips``) takes ``round(seg * i) + int(seg / (num_clips + 1) * (k + 1))`` for
      each segment, clip after clip.
    * Training mode: one clip (``num_clips`` is ignored, as in MMAction2), a random frame in
      ``[round(seg * i), round(seg * (i + 1))]`` per segment. ``rng``: ``None`` draws from numpy's global state
      exactly as MMAction2 does (``np.random.randint``); a ``np.random.RandomState`` reproduces MMAction2 after
      ``np.random.seed(s)`` when given ``RandomState(s)``; a ``np.random.Generator`` uses ``integers``.

    Videos shorter than ``clip_len`` (and one-frame videos) repeat frames: ``seg < 1`` so several segments share a
    start, and nothing reads past the last frame. ``total_frames == 0`` is MMAction2's degenerate case (indices
    may be negative); the decoders refuse such videos before sampling.
    """
    _check(total_frames, clip_len, num_clips)
    seg_size = float(total_frames - 1) / clip_len
    inds: list[int] = []
    if not test_mode:
        for i in range(clip_len):
            start = int(np.round(seg_size * i))
            end = int(np.round(seg_size * (i + 1)))
            inds.append(_randint(rng, start, end))
    else:
        duration = seg_size / (num_clips + 1)
        for k in range(num_clips):
            for i in range(clip_len):
                start = int(np.round(seg_size * i))
                inds.append(start + int(duration * (k + 1)))
    return np.asarray(inds, dtype=np.int64)


def original_test_sample(
    total_frames: int, clip_len: int, num_clips: int, *, start_index: int = 0, max_frame: int | None = None
) -> np.ndarray:
    """Frame indices of the original code's Kinetics sparse test sampling, all clips, ``[num_clips*clip_len]``.

    OpenGVLab/UniFormerV2 ``slowfast/datasets/kinetics_sparse.py`` decodes with decord and calls
    ``decoder.get_seq_frames(len(video), NUM_FRAMES, clip_idx, NUM_ENSEMBLE_VIEWS)`` once per temporal view
    ``clip_idx``; this returns those views concatenated in ``clip_idx`` order. The formula is MMAction2's test-mode
    ``UniformSample`` (which was copied from it) with two differences:

    * the segment length is clamped, ``seg = max(0, (N - 1) / clip_len)`` (only matters for ``N == 0``);
    * every index is clamped to ``max_frame`` (default ``total_frames - 1``) after adding ``start_index``.

    For every video with at least one frame the indices equal MMAction2's. What differs between the two codes'
    test-time views is the spatial part and the view order (see :func:`uniformerv2.data.read_test_views`): the
    original resizes with ``torch.nn.functional.interpolate`` on float frames and a floored long side, crops
    left/centre/right with ceil offsets, and orders views clip-major (``view = clip * num_crops + crop``).
    """
    _check(total_frames, clip_len, num_clips)
    seg_size = max(0.0, float(total_frames - 1) / clip_len)
    if max_frame is None:
        max_frame = int(total_frames) - 1
    duration = seg_size / (num_clips + 1)
    inds: list[int] = []
    for clip_idx in range(num_clips):
        for i in range(clip_len):
            start = int(np.round(seg_size * i))
            inds.append(min(start + int(duration * (clip_idx + 1)) + start_index, max_frame))
    return np.asarray(inds, dtype=np.int64)


def window_indices(
    times: np.ndarray,
    window_s: float,
    stride_s: float,
    frames: int,
    *,
    align_end: bool = True,
    duration: float | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Windows over a video whose frames are shown at ``times`` (seconds): every window's start and end time and,
    per window, ``frames`` frame indices spread uniformly over it (the frame shown at the centre of each of
    ``frames`` equal segments, as test-mode ``UniformSample`` takes them). Windows step by ``stride_s``; the last
    one ends with the video. Timing follows the frames' own timestamps, so a variable-frame-rate video is cut by
    time, not by an average frame rate.

    ``align_end=False`` keeps the grid regular instead (starts ``0, stride, 2 stride, ...`` while a whole window
    fits; the tail after the last whole window is not covered). ``duration``: the video's length in the units of
    ``times`` (default: the last time plus one frame interval). Any unit works: ``times = np.arange(n)`` with
    ``duration = n`` cuts windows measured in frames."""
    rel = np.asarray(times, dtype=np.float64) - float(times[0])
    n = len(rel)
    if duration is None:
        duration = video_duration(rel)
    span = min(window_s, duration)
    last = max(0.0, duration - window_s)
    starts = np.arange(0.0, last + 1e-9, stride_s)
    if align_end and last - starts[-1] > 1e-6:  # cover the end of the video
        starts = np.append(starts, last)
    centres = starts[:, None] + (np.arange(frames) + 0.5) * span / frames
    # 1 us below a frame boundary still counts as that frame (float sums such as 0.1 + 0.2)
    indices = np.clip(np.searchsorted(rel, centres + 1e-6, side="right") - 1, 0, n - 1)
    return starts, starts + span, indices
