"""Training-time augmentation of MMAction2 1.2.0's UniFormerV2 recipes, and the training clip dataset.

The train pipeline of every UniFormerV2 config::

    UniformSample(clip_len, num_clips=1)        random frame in each of clip_len segments
    Resize(scale=(-1, 256))                     short side 256, OpenCV bilinear
    PytorchVideoWrapper(op='RandAugment', magnitude=7, num_layers=4)
    RandomResizedCrop()                         area 0.08-1, aspect ratio 3/4-4/3
    Resize(scale=(224, 224), keep_ratio=False)  OpenCV bilinear
    Flip(flip_ratio=0.5)                        horizontal
    FormatShape('NCTHW')  + normalise (x - 114.75) / 57.375

RandAugment (:func:`rand_augment`) is pytorchvideo 0.1.5's ``RandAugment(magnitude, num_layers)`` as MMAction2's
``PytorchVideoWrapper`` applies it: to the uint8 frames of a clip as one ``[T, C, H, W]`` tensor, so every frame of a
clip gets the same operations with the same parameters. Of its 14 operations ``num_layers`` distinct ones are
drawn (uniformly, without replacement, in random order); each is then applied with probability ``prob=0.5``; its
magnitude is drawn per operation from ``N(magnitude, 0.5)`` clipped to ``[0, 10]`` and mapped to an argument:

===================  =============================================  ===================================
operation            argument at magnitude m                        at m = 7
===================  =============================================  ===================================
AdjustBrightness     factor 1 +- 0.9 m/10 (sign random)             0.37 or 1.63
AdjustContrast       factor 1 +- 0.9 m/10                           0.37 or 1.63
AdjustSaturation     factor 1 +- 0.9 m/10                           0.37 or 1.63
AdjustSharpness      factor 1 +- 0.9 m/10                           0.37 or 1.63
AutoContrast         --
Equalize             --
Invert               --
Rotate               +- 30 m/10 degrees, bilinear                   +- 21 degrees
Posterize            4 - int(4 m/10) bits                           2 bits (1 bit for m >= 7.5)
Solarize             threshold int((1 - m/10) * 255)                76
ShearX / ShearY      +- 0.3 m/10, about the top / left edge         +- 0.21
TranslateX / Y       +- 0.45 m/10 of the width / height             +- 0.315
===================  =============================================  ===================================

Geometric operations fill with pytorchvideo's ``fill=(0.5, 0.5, 0.5)``, which is meant for [0, 1] floats: on
MMAction2's uint8 frames it rounds to 0, so the fill is black; we fill with 0. Our operations are
``torchvision.transforms.v2.functional`` ones (pytorchvideo calls torchvision's v1 functional API): the results
agree exactly for Equalize, Invert, Posterize and Solarize and to 1 grey level on a few pixels for the others
(v2 rounds where v1 truncates; tests/test_train_augment.py compares every op with pytorchvideo's formulas).

How ``torchvision.transforms.v2.RandAugment`` differs (it is *not* used): it draws ``num_ops`` (default 2)
operations *with* replacement and always applies them (no per-op probability); its magnitude is a fixed bin
``magnitude`` of ``num_magnitude_bins=31`` (default 9, no Gaussian jitter); its 14 operations have Identity and
no Invert; translation reaches 150/331 = 0.45 of the image size at the top bin, brightness/colour/contrast/
sharpness factors ``1 +- 0.9``, posterize ``8 - 4 m`` bits (``int(8 - 4 * bin / 30)``, so 8 to 4 bits rather than
pytorchvideo's 4 to 0), solarize threshold ``255 (1 - m)`` (the same), and the fill defaults to 0.

RandomResizedCrop (:func:`random_resized_crop_box`) is MMAction2's (not torchvision's): 10 candidates drawn at
once, ``round`` of the side lengths, the first that fits is taken, else the centred square of the short side.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torchvision.transforms.v2.functional as TF
from torch.utils.data import Dataset

from .decode import open_video
from .sampling import uniform_sample
from .transforms import _resize_cv2_linear, normalize, resize_short_side

__all__ = [
    "RANDAUG_OPS",
    "rand_augment",
    "random_resized_crop_box",
    "resize_exact",
    "TrainTransform",
    "TrainClipsDataset",
    "item_rng",
]

RANDAUG_OPS = (
    "AdjustBrightness",
    "AdjustContrast",
    "AdjustSaturation",
    "AdjustSharpness",
    "AutoContrast",
    "Equalize",
    "Invert",
    "Rotate",
    "Posterize",
    "Solarize",
    "ShearX",
    "ShearY",
    "TranslateX",
    "TranslateY",
)
_MAX_LEVEL = 10.0
_BILINEAR = TF.InterpolationMode.BILINEAR


def _signed(rng: np.random.Generator, value: float) -> float:
    return value if rng.random() > 0.5 else -value


def _apply_op(video: torch.Tensor, name: str, level: float, rng: np.random.Generator, fill: float = 0) -> torch.Tensor:
    """One pytorchvideo RandAugment operation at ``level`` (0-10) on uint8 ``[T, C, H, W]``."""
    h, w = video.shape[-2:]
    m = level / _MAX_LEVEL
    if name in ("AdjustBrightness", "AdjustContrast", "AdjustSaturation", "AdjustSharpness"):
        factor = 1.0 + _signed(rng, 0.9 * m)
        fn = {
            "AdjustBrightness": TF.adjust_brightness,
            "AdjustContrast": TF.adjust_contrast,
            "AdjustSaturation": TF.adjust_saturation,
            "AdjustSharpness": TF.adjust_sharpness,
        }[name]
        return fn(video, factor)
    if name == "AutoContrast":
        return TF.autocontrast(video)
    if name == "Equalize":
        return TF.equalize(video)
    if name == "Invert":
        return TF.invert(video)
    if name == "Rotate":
        return TF.rotate(video, _signed(rng, 30.0 * m), interpolation=_BILINEAR, fill=fill)
    if name == "Posterize":
        bits = 4 - int(4 * m)
        return video if bits >= 8 else TF.posterize(video, max(0, bits))
    if name == "Solarize":
        return TF.solarize(video, int((1.0 - m) * 255.0))
    if name in ("ShearX", "ShearY"):
        # pytorchvideo: inverse matrix [1, f, H f / 2, 0, 1, 0] about the centre = a shear about the top edge
        angle = math.degrees(math.atan(_signed(rng, 0.3 * m)))
        shear = [angle, 0.0] if name == "ShearX" else [0.0, angle]
        return TF.affine(
            video,
            angle=0.0,
            translate=[0, 0],
            scale=1.0,
            shear=shear,
            center=[0, 0],
            interpolation=_BILINEAR,
            fill=fill,
        )
    if name in ("TranslateX", "TranslateY"):
        f = _signed(rng, 0.45 * m)
        translate = [-f * w, 0.0] if name == "TranslateX" else [0.0, -f * h]
        return TF.affine(
            video, angle=0.0, translate=translate, scale=1.0, shear=[0.0, 0.0], interpolation=_BILINEAR, fill=fill
        )
    raise ValueError(f"unknown RandAugment operation {name!r}")


def rand_augment(
    video: torch.Tensor,
    rng: np.random.Generator,
    *,
    magnitude: float = 7,
    num_layers: int = 4,
    prob: float = 0.5,
    sampling_std: float = 0.5,
    ops: Sequence[str] = RANDAUG_OPS,
) -> torch.Tensor:
    """pytorchvideo's RandAugment on a uint8 clip ``[T, C, H, W]`` (see the module docstring); same ops per frame."""
    if video.dtype != torch.uint8:
        raise TypeError(f"rand_augment expects uint8 frames, got {video.dtype}")
    if not 1 <= num_layers <= len(ops):
        raise ValueError(f"num_layers={num_layers} must lie in 1..{len(ops)}")
    chosen = rng.choice(len(ops), size=num_layers, replace=False)
    for i in chosen:
        if rng.random() > prob:
            continue
        level = float(min(_MAX_LEVEL, max(0.0, rng.normal(magnitude, sampling_std))))
        video = _apply_op(video, ops[int(i)], level, rng)
    return video


def random_resized_crop_box(
    h: int,
    w: int,
    rng: np.random.Generator,
    *,
    area_range: tuple[float, float] = (0.08, 1.0),
    aspect_ratio_range: tuple[float, float] = (3 / 4, 4 / 3),
    max_attempts: int = 10,
) -> tuple[int, int, int, int]:
    """MMAction2 ``RandomResizedCrop.get_crop_bbox``: box ``(x1, y1, x2, y2)``."""
    if not 0 < area_range[0] <= area_range[1] <= 1:
        raise ValueError(f"area_range={area_range} must satisfy 0 < low <= high <= 1")
    if not 0 < aspect_ratio_range[0] <= aspect_ratio_range[1]:
        raise ValueError(f"aspect_ratio_range={aspect_ratio_range} must satisfy 0 < low <= high")
    area = h * w
    lo, hi = aspect_ratio_range
    ratios = np.exp(rng.uniform(np.log(lo), np.log(hi), size=max_attempts))
    areas = rng.uniform(*area_range, size=max_attempts) * area
    cw = np.round(np.sqrt(areas * ratios)).astype(np.int32)
    ch = np.round(np.sqrt(areas / ratios)).astype(np.int32)
    for i in range(max_attempts):
        if ch[i] <= h and cw[i] <= w:
            x = int(rng.integers(0, w - cw[i] + 1))
            y = int(rng.integers(0, h - ch[i] + 1))
            return x, y, x + int(cw[i]), y + int(ch[i])
    side = min(h, w)
    x, y = (w - side) // 2, (h - side) // 2
    return x, y, x + side, y + side


def resize_exact(frames_thwc: torch.Tensor, out_h: int, out_w: int) -> torch.Tensor:
    """uint8 ``[T, H, W, C]`` -> ``[T, out_h, out_w, C]``, OpenCV bilinear (``Resize(keep_ratio=False)``)."""
    if frames_thwc.shape[1:3] == (out_h, out_w):
        return frames_thwc
    # OpenCV's INTER_LINEAR exactly, as mmcv.imresize does it
    out = _resize_cv2_linear(np.ascontiguousarray(frames_thwc.numpy()), out_h, out_w)
    return torch.as_tensor(np.asarray(out))


@dataclass
class TrainTransform:
    """The recipe's spatial training augmentation after decoding (see the module docstring)."""

    short_side: int = 256
    size: int = 224
    randaug: bool = True
    randaug_magnitude: float = 7
    randaug_num_layers: int = 4
    randaug_prob: float = 0.5
    area_range: tuple[float, float] = (0.08, 1.0)
    aspect_ratio_range: tuple[float, float] = (3 / 4, 4 / 3)
    flip_ratio: float = 0.5

    def __call__(self, frames: Any, rng: np.random.Generator) -> torch.Tensor:
        """uint8 ``[T, H, W, 3]`` (numpy or torch) -> uint8 ``[T, size, size, 3]``."""
        x = torch.from_numpy(np.ascontiguousarray(frames)) if isinstance(frames, np.ndarray) else frames
        if self.short_side:
            x = resize_short_side(x, self.short_side)
        if self.randaug:
            x = rand_augment(
                x.permute(0, 3, 1, 2),
                rng,
                magnitude=self.randaug_magnitude,
                num_layers=self.randaug_num_layers,
                prob=self.randaug_prob,
            ).permute(0, 2, 3, 1)
        h, w = x.shape[1:3]
        (area_lo, area_hi), (ratio_lo, ratio_hi) = self.area_range, self.aspect_ratio_range  # a config gives lists
        x1, y1, x2, y2 = random_resized_crop_box(
            h, w, rng, area_range=(area_lo, area_hi), aspect_ratio_range=(ratio_lo, ratio_hi)
        )
        x = resize_exact(x[:, y1:y2, x1:x2].contiguous(), self.size, self.size)
        if rng.random() < self.flip_ratio:
            x = x.flip(2)
        return x.contiguous()


def item_rng(seed: int, epoch: int, index: int) -> np.random.Generator:
    """The random generator of one training item: a function of (seed, epoch, index) only, so resume is exact."""
    return np.random.default_rng([int(seed) & 0xFFFFFFFF, int(epoch), int(index)])


class TrainClipsDataset(Dataset):
    """One augmented, normalised training clip ``float32 [3, T, H, W]`` and its label per item.

    Indexed by ``(epoch, index)`` (what :class:`uniformerv2.engine.sampler.ResumableSampler` yields) or by a plain
    index (epoch 0). All randomness -- the frames sampled, RandAugment, the crop, the flip -- comes from
    :func:`item_rng` ``(seed, epoch, index)``: no global RNG is touched, so any worker count, any rank and any resume
    point produce the same clip.
    """

    def __init__(
        self,
        samples: Sequence[Any],
        *,
        frames: int = 8,
        seed: int = 0,
        transform: TrainTransform | None = None,
        backend: str = "pyav",
    ) -> None:
        self.samples = list(samples)
        self.frames = int(frames)
        self.seed = int(seed)
        self.transform = transform or TrainTransform()
        self.backend = backend

    def __len__(self) -> int:
        return len(self.samples)

    def load(self, epoch: int, index: int) -> tuple[torch.Tensor, int]:
        sample = self.samples[index]
        rng = item_rng(self.seed, epoch, index)
        with open_video(sample.path, self.backend) as reader:
            inds = uniform_sample(reader.num_frames, self.frames, 1, test_mode=False, rng=rng)
            frames = reader.read(inds)
        clip = self.transform(frames, rng)  # uint8 [T, H, W, 3]
        x = normalize(clip.permute(3, 0, 1, 2).contiguous())  # [3, T, H, W]
        return x, int(sample.label)

    def __getitem__(self, key: Any) -> tuple[torch.Tensor, int]:
        if isinstance(key, (tuple, list)):
            epoch, index = key
        else:
            epoch, index = 0, key
        return self.load(int(epoch), int(index))
