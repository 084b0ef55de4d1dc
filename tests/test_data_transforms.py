"""Temporal sampling and test-time transforms (the oracle comparisons are in test_data_parity.py)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from uniformerv2 import Protocol
from uniformerv2.data import (
    MEAN,
    STD,
    center_crop_box,
    normalize,
    original_test_sample,
    rescale_size,
    resize_short_side,
    three_crop_boxes,
    uniform_sample,
    views_from_frames,
)
from uniformerv2.data.transforms import center_crop_box_original, resize_short_side_original, three_crop_boxes_original

# ------------------------------------------------------------------------------------------------- sampling


def test_uniform_sample_test_mode_lays_out_clips_one_after_another() -> None:
    inds = uniform_sample(280, 8, 4, test_mode=True)
    assert inds.shape == (32,)
    clips = inds.reshape(4, 8)
    assert (np.diff(clips, axis=1) > 0).all()  # every clip runs forward
    assert (np.diff(clips, axis=0) >= 0).all()  # later clips sit later in each segment
    assert inds.min() >= 0 and inds.max() <= 279


def test_uniform_sample_short_video_repeats_frames_and_stays_in_range() -> None:
    for total in (1, 2, 5, 7):
        inds = uniform_sample(total, 8, 4, test_mode=True)
        assert inds.min() >= 0 and inds.max() <= total - 1
        assert (np.diff(inds.reshape(4, 8), axis=1) >= 0).all()
    assert uniform_sample(1, 8, 2, test_mode=True).tolist() == [0] * 16


def test_uniform_sample_train_mode_is_seeded_and_within_segments() -> None:
    a = uniform_sample(300, 8, test_mode=False, rng=np.random.default_rng(3))
    b = uniform_sample(300, 8, test_mode=False, rng=np.random.default_rng(3))
    assert a.tolist() == b.tolist() and a.shape == (8,)
    seg = 299 / 8
    for i, x in enumerate(a):
        assert round(seg * i) <= x <= round(seg * (i + 1))
    legacy = uniform_sample(300, 8, test_mode=False, rng=np.random.RandomState(5))
    np.random.seed(5)  # rng=None draws from numpy's global state, as MMAction2
    assert uniform_sample(300, 8, test_mode=False).tolist() == legacy.tolist()


def test_original_test_sample_equals_mmaction2_except_for_clamping() -> None:
    for total in (1, 5, 37, 164, 280, 301):
        for clip_len, num_clips in ((8, 4), (16, 4), (32, 2)):
            assert np.array_equal(
                original_test_sample(total, clip_len, num_clips),
                uniform_sample(total, clip_len, num_clips, test_mode=True),
            )
    assert original_test_sample(100, 8, 1, max_frame=50).max() == 50


def test_sampling_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError, match="clip_len"):
        uniform_sample(10, 0, 1, test_mode=True)
    with pytest.raises(ValueError, match="total_frames"):
        original_test_sample(-1, 8, 1)


# ------------------------------------------------------------------------------------------------- resize


def test_rescale_size_rounds_like_mmcv() -> None:
    assert rescale_size(256, 340, 224) == (224, 298)  # 340 * 0.875 = 297.5 -> 298
    assert rescale_size(240, 320, 224) == (224, 299)  # 298.67 -> 299
    assert rescale_size(160, 90, 224) == (398, 224)
    assert rescale_size(97, 171, 224) == (224, 395)


def test_resize_short_side_keeps_type_and_shape() -> None:
    frames = np.random.default_rng(0).integers(0, 256, (3, 97, 171, 3), dtype=np.uint8)
    out = resize_short_side(frames, 64)
    assert isinstance(out, np.ndarray) and out.shape == (3, 64, 113, 3) and out.dtype == np.uint8
    out_t = resize_short_side(torch.from_numpy(frames), 64)
    assert isinstance(out_t, torch.Tensor) and np.array_equal(out_t.numpy(), out)
    assert np.array_equal(resize_short_side(frames[0], 64), out[0])  # a single image [H, W, 3]
    same = resize_short_side(frames, 97)
    assert np.array_equal(same, frames) and same is not frames


def test_resize_short_side_is_bilinear_without_antialiasing() -> None:
    """Within one grey level of float bilinear with half-pixel centres (OpenCV's 11-bit weights round)."""
    frames = np.random.default_rng(1).integers(0, 256, (2, 120, 90, 3), dtype=np.uint8)
    for size in (40, 224):
        out = resize_short_side(frames, size).astype(np.int16)
        h, w = rescale_size(120, 90, size)
        ref = torch.nn.functional.interpolate(
            torch.from_numpy(frames).permute(0, 3, 1, 2).float(),
            size=(h, w),
            mode="bilinear",
            align_corners=False,
            antialias=False,
        )
        ref = ref.round().permute(0, 2, 3, 1).numpy().astype(np.int16)
        assert np.abs(out - ref).max() <= 1


def test_constant_image_stays_constant() -> None:
    frames = np.full((1, 50, 70, 3), 201, dtype=np.uint8)
    assert (resize_short_side(frames, 224) == 201).all()
    assert (resize_short_side(frames, 13) == 201).all()


# --------------------------------------------------------------------------------------------------- crops


def test_three_crop_landscape_order_is_left_right_centre() -> None:
    assert three_crop_boxes(224, 298, 224) == [(0, 0, 224, 224), (74, 0, 298, 224), (37, 0, 261, 224)]
    # odd remainder: the "right" crop stops one pixel short of the edge, as in MMAction2
    assert three_crop_boxes(224, 299, 224) == [(0, 0, 224, 224), (74, 0, 298, 224), (37, 0, 261, 224)]


def test_three_crop_portrait_order_is_top_bottom_centre() -> None:
    assert three_crop_boxes(398, 224, 224) == [(0, 0, 224, 224), (0, 174, 224, 398), (0, 87, 224, 311)]


def test_three_crop_needs_the_short_side_to_match() -> None:
    with pytest.raises(ValueError, match="ThreeCrop"):
        three_crop_boxes(256, 340, 224)


def test_center_crop_floors_the_offset() -> None:
    assert center_crop_box(224, 299, 224) == (37, 0, 261, 224)
    assert center_crop_box(395, 224, 224) == (0, 85, 224, 309)


def test_original_crops_use_ceil_and_touch_the_far_edge() -> None:
    assert three_crop_boxes_original(224, 299, 224) == [(0, 0, 224, 224), (38, 0, 262, 224), (75, 0, 299, 224)]
    assert center_crop_box_original(395, 224, 224) == (0, 86, 224, 310)
    frames = np.zeros((1, 240, 320, 3), dtype=np.uint8)
    assert resize_short_side_original(frames, 224).shape == (1, 224, 298, 3)  # floor(320 / 240 * 224) = 298


# -------------------------------------------------------------------------------------------------- layout


def test_views_are_crop_major_nc_t_h_w() -> None:
    """Frame j of the samples carries the value j; every crop of an image whose columns are the crop index."""
    clip_len, num_clips = 3, 2
    n = clip_len * num_clips
    frames = np.zeros((n, 4, 6, 3), dtype=np.uint8)
    frames[..., 0] = np.arange(n)[:, None, None]  # red = sample number
    frames[..., 1] = np.array([0, 0, 1, 1, 2, 2], dtype=np.uint8)[None, None, :]  # green marks columns
    views = views_from_frames(frames, Protocol(clip_len, 4, num_clips, 3))  # 4x6 is already short side 4
    assert views.shape == (6, 3, 3, 4, 4) and views.dtype == torch.uint8
    for crop in range(3):
        for clip in range(num_clips):
            v = views[crop * num_clips + clip]
            assert v[0, :, 0, 0].tolist() == [clip * clip_len + t for t in range(clip_len)]
    # crops: left (cols 0-3), right (cols 2-5), centre (cols 1-4)
    assert views[0, 1, 0, 0].tolist() == [0, 0, 1, 1]
    assert views[2, 1, 0, 0].tolist() == [1, 1, 2, 2]
    assert views[4, 1, 0, 0].tolist() == [0, 1, 1, 2]


def test_views_from_frames_maps_repeated_samples() -> None:
    frames = np.stack([np.full((8, 8, 3), v, dtype=np.uint8) for v in (10, 20)])
    views = views_from_frames(frames, Protocol(4, 8, 1, 1), inverse=np.array([0, 0, 1, 1]))
    assert views[0, 0, :, 0, 0].tolist() == [10, 10, 20, 20]


def test_normalize_uses_mmaction2_mean_and_std() -> None:
    x = torch.tensor([0, 114, 115, 255], dtype=torch.uint8)
    assert MEAN == 114.75 and STD == 57.375
    out = normalize(x)
    assert out.dtype == torch.float32
    assert torch.allclose(out, (x.float() - 114.75) / 57.375)
