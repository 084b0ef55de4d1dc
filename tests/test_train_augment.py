"""Training augmentation: pytorchvideo's RandAugment ops, MMAction2's RandomResizedCrop, the training clip dataset."""

import numpy as np
import pytest
import torch
import torchvision.transforms.functional as F1

from uniformerv2.data.augment import (
    RANDAUG_OPS,
    TrainClipsDataset,
    TrainTransform,
    _apply_op,
    item_rng,
    rand_augment,
    random_resized_crop_box,
)

F_t = pytest.importorskip("torchvision.transforms._functional_tensor")
FILL = [0.5, 0.5, 0.5]  # pytorchvideo's default fill, given uint8 frames by MMAction2


class FixedSign:
    """An rng whose random() always returns ``value`` (pytorchvideo negates when rand() <= 0.5)."""

    def __init__(self, value):
        self.value = value

    def random(self):
        return self.value


def pytorchvideo_reference(video, name, level, negate):
    """pytorchvideo 0.1.5 ``augmentations.py`` for one op at ``level``, as MMAction2 calls it (uint8 TCHW)."""
    m = level / 10

    def signed(v):
        return -v if negate else v

    if name == "AdjustBrightness":
        return F1.adjust_brightness(video, 1 + signed(0.9 * m))
    if name == "AdjustContrast":
        return F1.adjust_contrast(video, 1 + signed(0.9 * m))
    if name == "AdjustSaturation":
        return F1.adjust_saturation(video, 1 + signed(0.9 * m))
    if name == "AdjustSharpness":
        return F1.adjust_sharpness(video, 1 + signed(0.9 * m))
    if name == "AutoContrast":
        return F1.autocontrast(video)
    if name == "Equalize":
        return F1.equalize(video)
    if name == "Invert":
        return F1.invert(video)
    if name == "Rotate":
        return F1.rotate(video, signed(30 * m), fill=FILL, interpolation=F1.InterpolationMode.BILINEAR)
    if name == "Posterize":
        bits = 4 - int(4 * m)
        return video if bits >= 8 else F1.posterize(video, bits)
    if name == "Solarize":
        return F1.solarize(video, int((1 - m) * 255.0))
    f = signed({"ShearX": 0.3, "ShearY": 0.3, "TranslateX": 0.45, "TranslateY": 0.45}[name] * m)
    h, w = video.shape[-2:]
    matrix = {
        "ShearX": [1, f, h * f / 2, 0, 1, 0],
        "ShearY": [1, 0, 0, f, 1, w * f / 2],
        "TranslateX": [1, 0, f * w, 0, 1, 0],
        "TranslateY": [1, 0, 0, 0, 1, f * h],
    }[name]
    return F_t.affine(video, matrix, fill=FILL, interpolation="bilinear")


@pytest.fixture(scope="module")
def clip():
    g = torch.Generator().manual_seed(0)
    base = torch.randint(0, 256, (3, 3, 30, 40), dtype=torch.uint8, generator=g)
    # smooth it a little so that geometric ops are not dominated by aliasing
    return F1.gaussian_blur(base, [3, 3]).contiguous()


@pytest.mark.parametrize("name", RANDAUG_OPS)
@pytest.mark.parametrize("negate", [False, True])
@pytest.mark.parametrize("level", [3.0, 7.0, 7.6])
def test_ops_match_pytorchvideo(clip, name, negate, level):
    ours = _apply_op(clip, name, level, FixedSign(0.2 if negate else 0.8))
    ref = pytorchvideo_reference(clip, name, level, negate)
    assert ours.dtype == torch.uint8 and ours.shape == clip.shape
    diff = (ours.int() - ref.int()).abs()
    # torchvision v2 rounds where v1 truncates (interpolation, grayscale, blending, autocontrast scaling)
    assert diff.max() <= 1, name
    assert (diff > 0).float().mean() < 0.05, name
    if name in ("Equalize", "Invert", "Posterize", "Solarize"):
        assert diff.max() == 0, name


def test_magnitude_mapping_at_the_recipe_magnitude(clip):
    # posterize: 2 bits at m=7, 1 bit from m=7.5
    assert torch.equal(_apply_op(clip, "Posterize", 7.0, FixedSign(0.8)), clip & 0b11000000)
    assert torch.equal(_apply_op(clip, "Posterize", 7.6, FixedSign(0.8)), clip & 0b10000000)
    solar = _apply_op(clip, "Solarize", 7.0, FixedSign(0.8))
    assert torch.equal(solar, torch.where(clip >= 76, 255 - clip, clip))


def test_same_op_for_every_frame():
    frame = torch.randint(0, 256, (1, 3, 24, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(1))
    video = frame.expand(6, -1, -1, -1).contiguous()
    for seed in range(20):
        out = rand_augment(video, np.random.default_rng(seed), magnitude=7, num_layers=4)
        assert all(torch.equal(out[0], out[t]) for t in range(1, 6))


def test_rand_augment_draws_distinct_ops_with_prob_half(monkeypatch):
    import uniformerv2.data.augment as A

    calls = []
    monkeypatch.setattr(A, "_apply_op", lambda video, name, level, rng, fill=0: calls.append((name, level)) or video)
    rounds = 2000
    video = torch.zeros(1, 3, 4, 4, dtype=torch.uint8)
    rng = np.random.default_rng(0)
    for _ in range(rounds):
        before = len(calls)
        rand_augment(video, rng, magnitude=7, num_layers=4)
        names = [c[0] for c in calls[before:]]
        assert len(names) == len(set(names)) <= 4
    assert len(calls) / rounds == pytest.approx(2.0, abs=0.1)  # 4 ops x prob 0.5
    levels = np.array([c[1] for c in calls])
    assert levels.mean() == pytest.approx(7.0, abs=0.05) and levels.std() == pytest.approx(0.5, abs=0.05)
    counts = {n: sum(c[0] == n for c in calls) for n in RANDAUG_OPS}
    assert min(counts.values()) > 0.6 * len(calls) / 14


def test_random_resized_crop_box_is_mmaction2s():
    rng = np.random.default_rng(0)
    for _ in range(500):
        h, w = int(rng.integers(20, 300)), int(rng.integers(20, 300))
        x1, y1, x2, y2 = random_resized_crop_box(h, w, rng)
        cw, ch = x2 - x1, y2 - y1
        assert 0 <= x1 < x2 <= w and 0 <= y1 < y2 <= h
        if (cw, ch) != (min(h, w), min(h, w)) or (x1, y1) != ((w - cw) // 2, (h - ch) // 2):
            area = cw * ch / (h * w)
            assert 0.08 * 0.8 <= area <= 1.0 + 0.05  # rounded sides
            assert 3 / 4 * 0.8 <= cw / ch <= 4 / 3 * 1.25
    # impossible candidates -> the centred square of the short side
    assert random_resized_crop_box(
        10, 100, np.random.default_rng(0), area_range=(1.0, 1.0), aspect_ratio_range=(1.0, 1.0)
    ) == (45, 0, 55, 10)


@pytest.fixture(scope="module")
def one_video(tmp_path_factory):
    from uniformerv2.data import VideoSample
    from uniformerv2.demo import make_lamp_video, write_video

    root = tmp_path_factory.mktemp("aug_videos")
    paths = []
    for k in range(2):
        paths.append(
            write_video(root / f"{k}.mp4", make_lamp_video(k, np.random.default_rng(k), frames=12, height=36, width=48))
        )
    return [VideoSample(str(p), k) for k, p in enumerate(paths)]


def test_train_clips_dataset_is_a_function_of_seed_epoch_index(one_video):
    tf = TrainTransform(short_side=32, size=24)
    ds = TrainClipsDataset(one_video, frames=4, seed=3, transform=tf)
    x, y = ds[(2, 1)]
    assert x.dtype == torch.float32 and x.shape == (3, 4, 24, 24) and y == 1
    assert -2.1 < float(x.min()) and float(x.max()) < 2.5  # (pixel - 114.75) / 57.375
    torch.manual_seed(123)
    np.random.seed(5)
    x2, _ = ds[(2, 1)]
    assert torch.equal(x, x2)  # no global RNG involved
    assert not torch.equal(x, ds[(3, 1)][0])  # a new epoch, a new augmentation
    assert not torch.equal(x, TrainClipsDataset(one_video, frames=4, seed=4, transform=tf)[(2, 1)][0])
    assert torch.equal(ds[1][0], ds[(0, 1)][0])
    a, b = item_rng(1, 2, 3).random(), item_rng(1, 2, 3).random()
    assert a == b


def test_train_transform_without_randaug_is_crop_resize_flip(one_video):
    from uniformerv2.data import read_frames

    frames = read_frames(one_video[0].path, [0, 3, 6, 9])
    tf = TrainTransform(
        short_side=36, size=36, randaug=False, area_range=(1.0, 1.0), aspect_ratio_range=(1.0, 1.0), flip_ratio=0.0
    )
    out = tf(frames, np.random.default_rng(0))
    # a 36x48 frame: full-area square crops do not fit -> the centred 36x36 square, no resize needed
    assert torch.equal(out, torch.from_numpy(frames[:, :, 6:42]))
    flipped = TrainTransform(
        short_side=36, size=36, randaug=False, area_range=(1.0, 1.0), aspect_ratio_range=(1.0, 1.0), flip_ratio=1.0
    )(frames, np.random.default_rng(0))
    assert torch.equal(flipped, out.flip(2))
