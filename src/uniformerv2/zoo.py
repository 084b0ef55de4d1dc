"""The model zoo: named presets for every published UniFormerV2 checkpoint.

Two zoos are covered:

* ``source='mmaction2'``: one preset per config file of MMAction2 1.2.0's ``configs/recognition/uniformerv2``,
  named exactly like the file (without ``.py``). Accuracy, FLOPs, parameters and checkpoint URLs are those of that
  folder's README tables; the test protocol is the README's "testing protocol" column (or the config's test pipeline
  where the README gives none).
* ``source='original'``: one preset per ``.pyth`` checkpoint of the authors' MODEL_ZOO.md
  (github.com/OpenGVLab/UniFormerV2), named after the file stem. The architecture is the experiment's
  ``config.yaml`` with the overrides of its ``run.sh`` / ``test.sh``; the test protocol is MODEL_ZOO's
  "#Frame" column (frames x crops x clips).

Everything here is data: no file is read and nothing is downloaded at import time.
"""

from __future__ import annotations

import difflib
import fnmatch
from dataclasses import dataclass
from typing import Any

from .config import UniFormerV2Config
from .errors import UnknownModelError, UsageError
from .protocol import Protocol

__all__ = [
    "CLIP_CHECKPOINT_URLS",
    "Preset",
    "UnknownModelError",
    "get_preset",
    "list_models",
]

CLIP_CHECKPOINT_URLS: dict[str, str] = {
    "ViT-B/16": "https://download.openmmlab.com/mmaction/v1.0/recognition/uniformerv2/clipVisualEncoder/"
    "vit-base-p16-res224_clip-rgb_20221219-b8a5da86.pth",
    "ViT-L/14": "https://download.openmmlab.com/mmaction/v1.0/recognition/uniformerv2/clipVisualEncoder/"
    "vit-large-p14-res224_clip-rgb_20221219-9de7543e.pth",
    "ViT-L/14_336": "https://download.openmmlab.com/mmaction/v1.0/recognition/uniformerv2/clipVisualEncoder/"
    "vit-large-p14-res336_clip-rgb_20221219-d370f9e5.pth",
}

_MMACTION2_URL = "https://download.openmmlab.com/mmaction/v1.0/recognition/uniformerv2"
_ORIGINAL_URL = "https://pjlab-gvm-data.oss-cn-shanghai.aliyuncs.com/uniformerv2"

NUM_CLASSES: dict[str, int] = {
    "kinetics400": 400,
    "kinetics600": 600,
    "kinetics700": 700,
    "kinetics710": 710,
    "mitv1": 339,
    "sthv1": 174,
    "sthv2": 174,
    "activitynet": 200,
    "hacs": 200,
}
# Class-name files shipped in uniformerv2/labels, in MMAction2's class order.
_MMACTION2_LABEL_MAPS: dict[str, str] = {
    "kinetics400": "k400",
    "kinetics600": "k600",
    "kinetics700": "k700",
    "kinetics710": "k710",
    "mitv1": "mitv1",
}


@dataclass(frozen=True)
class Preset:
    """A published UniFormerV2 model: architecture, checkpoint, test protocol and reported accuracy."""

    name: str
    config: UniFormerV2Config
    source: str
    dataset: str
    num_frames: int
    resolution: int
    num_clips: int
    num_crops: int
    url: str | None
    checkpoint_format: str
    pretrain: str
    clip_model: str
    label_map: str | None
    top1: float | None = None
    top5: float | None = None
    reference_top1: float | None = None
    reference_top5: float | None = None
    mm_kinetics_top1: float | None = None
    mm_kinetics_top5: float | None = None
    flops: str | None = None
    params: str | None = None
    sampling: str = "mmaction2"
    notes: str = ""
    grad_checkpoint_blocks: int = 0  # the authors' training runs recomputed this many local blocks' activations

    @property
    def protocol(self) -> Protocol:
        """The published test views."""
        return Protocol(self.num_frames, self.resolution, self.num_clips, self.num_crops, self.sampling)

    @property
    def reported_top1(self) -> float | None:
        """The first reported top-1 of: own table column, mm-Kinetics column, reference column."""
        for value in (self.top1, self.mm_kinetics_top1, self.reference_top1):
            if value is not None:
                return value
        return None

    @property
    def num_views(self) -> int:
        """Views averaged per video at test time (clips x crops)."""
        return self.num_clips * self.num_crops

    @property
    def label_map_file(self) -> str | None:
        """Package-relative path of the class-name file, e.g. 'labels/label_map_k400.txt'."""
        return None if self.label_map is None else f"labels/label_map_{self.label_map}.txt"


# --------------------------------------------------------------------------------------------------------------
# Architectures. The three CLIP image encoders fix resolution, patch, width, depth and heads; the rest varies.
# --------------------------------------------------------------------------------------------------------------


def _b16(**overrides: Any) -> UniFormerV2Config:
    """UniFormerV2-B/16 on CLIP ViT-B/16 (224 px), global blocks on the last 4 local blocks."""
    arch: dict[str, Any] = dict(
        input_resolution=224,
        patch_size=16,
        width=768,
        layers=12,
        heads=12,
        n_dim=768,
        n_head=12,
        return_list=(8, 9, 10, 11),
        n_layers=4,
        mlp_dropout=(0.5,) * 4,
        dw_reduction=1.5,
        temporal_downsample=False,
        no_lmhra=True,
        double_lmhra=True,
    )
    return UniFormerV2Config(**{**arch, **overrides})


def _l14(**overrides: Any) -> UniFormerV2Config:
    """UniFormerV2-L/14 on CLIP ViT-L/14 (224 px), global blocks on the last 4 local blocks."""
    arch: dict[str, Any] = dict(
        input_resolution=224,
        patch_size=14,
        width=1024,
        layers=24,
        heads=16,
        n_dim=1024,
        n_head=16,
        return_list=(20, 21, 22, 23),
        n_layers=4,
        mlp_dropout=(0.5,) * 4,
        dw_reduction=1.5,
        temporal_downsample=False,
        no_lmhra=True,
        double_lmhra=True,
    )
    return UniFormerV2Config(**{**arch, **overrides})


def _l14_336(**overrides: Any) -> UniFormerV2Config:
    """UniFormerV2-L/14@336 on CLIP ViT-L/14 at 336 px."""
    return _l14(input_resolution=336, **overrides)


_ARCHS = {"b16": (_b16, "ViT-B/16"), "l14": (_l14, "ViT-L/14"), "l14_336": (_l14_336, "ViT-L/14_336")}

# Something-Something: local MHRA (twice per block), temporal downsampling, global blocks on the last 8 (B) or
# 16 (L) local blocks, and stochastic depth (config.yaml of exp/sthv1, exp/sthv2).
_STH_B16: dict[str, Any] = dict(
    n_layers=8,
    return_list=tuple(range(4, 12)),
    mlp_dropout=(0.5,) * 8,
    temporal_downsample=True,
    no_lmhra=False,
    double_lmhra=True,
    backbone_drop_path_rate=0.2,
    drop_path_rate=0.4,
)
_STH_L14: dict[str, Any] = dict(
    n_layers=16,
    return_list=tuple(range(8, 24)),
    mlp_dropout=(0.5,) * 16,
    temporal_downsample=True,
    no_lmhra=False,
    double_lmhra=True,
    backbone_drop_path_rate=0.2,
    drop_path_rate=0.4,
    grad_checkpoint_blocks=15,
)
# ActivityNet and HACS fine-tuning (exp/anet, exp/hacs).
_UNTRIMMED: dict[str, Any] = dict(backbone_drop_path_rate=0.2, drop_path_rate=0.4, grad_checkpoint_blocks=1)
# Original L/14@336 fine-tuning with 32 or 64 frames (exp/k*/k*+k710_l14_f{32,64}x336).
_CKPT24: dict[str, Any] = dict(grad_checkpoint_blocks=24)


# --------------------------------------------------------------------------------------------------------------
# MMAction2 1.2.0 (configs/recognition/uniformerv2: README.md tables and the config files)
# --------------------------------------------------------------------------------------------------------------


def _mm(
    name: str,
    arch: str,
    dataset: str,
    frames: int,
    clips: int,
    url: str | None,
    pretrain: str,
    *,
    top: tuple[float | None, float | None] = (None, None),
    reference: tuple[float | None, float | None] = (None, None),
    mm_kinetics: tuple[float | None, float | None] = (None, None),
    flops: str | None = None,
    params: str | None = None,
    notes: str = "",
) -> Preset:
    """A preset for one MMAction2 config file and its README row."""
    build, clip_model = _ARCHS[arch]
    config = build(t_size=frames, num_classes=NUM_CLASSES[dataset], dropout_ratio=0.5)
    return Preset(
        name=name,
        config=config,
        source="mmaction2",
        dataset=dataset,
        num_frames=frames,
        resolution=config.input_resolution,
        num_clips=clips,
        num_crops=3,
        url=url,
        checkpoint_format="mmaction2",
        pretrain=pretrain,
        clip_model=clip_model,
        label_map=_MMACTION2_LABEL_MAPS[dataset],
        top1=top[0],
        top5=top[1],
        reference_top1=reference[0],
        reference_top5=reference[1],
        mm_kinetics_top1=mm_kinetics[0],
        mm_kinetics_top5=mm_kinetics[1],
        flops=flops,
        params=params,
        sampling="mmaction2",
        notes=notes,
    )


def _own(name: str, stamp: str) -> str:
    """URL of a checkpoint MMAction2 trained itself (a folder per config)."""
    return f"{_MMACTION2_URL}/{name}/{name}_{stamp}.pth"


def _ported(folder: str, name: str, stamp: str) -> str:
    """URL of a checkpoint MMAction2 converted from the original repository."""
    return f"{_MMACTION2_URL}/{folder}/{name}_{stamp}.pth"


_B = "uniformerv2-base-p16-res224"
_L = "uniformerv2-large-p14-res224"
_L336 = "uniformerv2-large-p14-res336"
_PORTED = "Ported by MMAction2 from the original repository (README '*'); 'reference' is the original's number."
_U32_CLIPS = "The README's testing protocol is 2 clips x 3 crops; the config's test pipeline samples 4 clips."

_MMACTION2: list[Preset] = [
    # Kinetics-400
    _mm(
        f"{_B}_clip_8xb32-u8_kinetics400-rgb",
        "b16",
        "kinetics400",
        8,
        4,
        _own(f"{_B}_clip_8xb32-u8_kinetics400-rgb", "20230313-e29fc968"),
        "clip",
        reference=(84.3, 96.4),
        mm_kinetics=(84.4, 96.3),
        flops="0.1T",
        params="115M",
        notes="Trained by MMAction2 on its own Kinetics-400 (the README's top1 column is '-').",
    ),
    _mm(
        f"{_B}_clip-kinetics710-pre_8xb32-u8_kinetics400-rgb",
        "b16",
        "kinetics400",
        8,
        4,
        _own(f"{_B}_clip-kinetics710-pre_8xb32-u8_kinetics400-rgb", "20230313-75be0806"),
        "clip-kinetics710",
        reference=(85.6, 97.0),
        mm_kinetics=(85.8, 97.1),
        flops="0.1T",
        params="115M",
        notes="Fine-tuned by MMAction2 from the K710 B/16 model; its head starts from the K710 head "
        "(channel map k710 -> k400).",
    ),
    _mm(
        f"{_L}_clip-kinetics710-pre_u8_kinetics400-rgb",
        "l14",
        "kinetics400",
        8,
        4,
        _ported("kinetics400", f"{_L}_clip-kinetics710-pre_u8_kinetics400-rgb", "20221219-972ea063"),
        "clip-kinetics710",
        top=(88.7, 98.1),
        reference=(88.8, 98.1),
        mm_kinetics=(88.7, 98.1),
        flops="0.7T",
        params="354M",
        notes=_PORTED,
    ),
    _mm(
        f"{_L}_clip-kinetics710-pre_u16_kinetics400-rgb",
        "l14",
        "kinetics400",
        16,
        4,
        _ported("kinetics400", f"{_L}_clip-kinetics710-pre_u16_kinetics400-rgb", "20221219-6dc86d05"),
        "clip-kinetics710",
        top=(89.0, 98.2),
        reference=(89.1, 98.2),
        mm_kinetics=(89.0, 98.2),
        flops="1.3T",
        params="354M",
        notes=_PORTED,
    ),
    _mm(
        f"{_L}_clip-kinetics710-pre_u32_kinetics400-rgb",
        "l14",
        "kinetics400",
        32,
        2,
        _ported("kinetics400", f"{_L}_clip-kinetics710-pre_u32_kinetics400-rgb", "20221219-56a46f64"),
        "clip-kinetics710",
        top=(89.3, 98.2),
        reference=(89.3, 98.2),
        mm_kinetics=(89.4, 98.2),
        flops="2.7T",
        params="354M",
        notes=f"{_PORTED} {_U32_CLIPS}",
    ),
    _mm(
        f"{_L336}_clip-kinetics710-pre_u32_kinetics400-rgb",
        "l14_336",
        "kinetics400",
        32,
        2,
        _ported("kinetics400", f"{_L336}_clip-kinetics710-pre_u32_kinetics400-rgb", "20221219-1dd7650f"),
        "clip-kinetics710",
        top=(89.5, 98.4),
        reference=(89.7, 98.3),
        mm_kinetics=(89.5, 98.4),
        flops="6.3T",
        params="354M",
        notes=_PORTED,
    ),
    # Kinetics-600
    _mm(
        f"{_B}_clip-kinetics710-pre_8xb32-u8_kinetics600-rgb",
        "b16",
        "kinetics600",
        8,
        4,
        _own(f"{_B}_clip-kinetics710-pre_8xb32-u8_kinetics600-rgb", "20230313-544f06f0"),
        "clip-kinetics710",
        reference=(86.1, 97.2),
        mm_kinetics=(86.4, 97.3),
        flops="0.1T",
        params="115M",
        notes="Fine-tuned by MMAction2 from the K710 B/16 model; its head starts from the K710 head "
        "(channel map k710 -> k600).",
    ),
    _mm(
        f"{_L}_clip-kinetics710-pre_u8_kinetics600-rgb",
        "l14",
        "kinetics600",
        8,
        4,
        _ported("kinetics600", f"{_L}_clip-kinetics710-pre_u8_kinetics600-rgb", "20221219-cf88e4c2"),
        "clip-kinetics710",
        top=(89.0, 98.3),
        reference=(89.0, 98.2),
        mm_kinetics=(87.5, 98.0),
        flops="0.7T",
        params="354M",
        notes=_PORTED,
    ),
    _mm(
        f"{_L}_clip-kinetics710-pre_u16_kinetics600-rgb",
        "l14",
        "kinetics600",
        16,
        4,
        _ported("kinetics600", f"{_L}_clip-kinetics710-pre_u16_kinetics600-rgb", "20221219-38ff0e3e"),
        "clip-kinetics710",
        top=(89.4, 98.3),
        reference=(89.4, 98.3),
        mm_kinetics=(87.8, 98.0),
        flops="1.3T",
        params="354M",
        notes=_PORTED,
    ),
    _mm(
        f"{_L}_clip-kinetics710-pre_u32_kinetics600-rgb",
        "l14",
        "kinetics600",
        32,
        2,
        _ported("kinetics600", f"{_L}_clip-kinetics710-pre_u32_kinetics600-rgb", "20221219-d450d071"),
        "clip-kinetics710",
        top=(89.2, 98.3),
        reference=(89.5, 98.3),
        mm_kinetics=(87.7, 98.1),
        flops="2.7T",
        params="354M",
        notes=f"{_PORTED} {_U32_CLIPS}",
    ),
    _mm(
        f"{_L336}_clip-kinetics710-pre_u32_kinetics600-rgb",
        "l14_336",
        "kinetics600",
        32,
        2,
        _ported("kinetics600", f"{_L336}_clip-kinetics710-pre_u32_kinetics600-rgb", "20221219-f984f5d2"),
        "clip-kinetics710",
        top=(89.8, 98.5),
        reference=(89.9, 98.5),
        mm_kinetics=(88.8, 98.3),
        flops="6.3T",
        params="354M",
        notes=_PORTED,
    ),
    # Kinetics-700
    _mm(
        f"{_B}_clip_8xb32-u8_kinetics700-rgb",
        "b16",
        "kinetics700",
        8,
        4,
        _own(f"{_B}_clip_8xb32-u8_kinetics700-rgb", "20230313-f02e48ad"),
        "clip",
        reference=(75.8, 92.8),
        mm_kinetics=(75.9, 92.9),
        flops="0.1T",
        params="115M",
        notes="Trained by MMAction2 from CLIP. The README row's config link points at the K710-pretrained "
        "config by mistake; its checkpoint and pretrain column are this config's.",
    ),
    _mm(
        f"{_B}_clip-kinetics710-pre_8xb32-u8_kinetics700-rgb",
        "b16",
        "kinetics700",
        8,
        4,
        _own(f"{_B}_clip-kinetics710-pre_8xb32-u8_kinetics700-rgb", "20230313-69070837"),
        "clip-kinetics710",
        reference=(76.3, 92.7),
        mm_kinetics=(76.3, 92.9),
        flops="0.1T",
        params="115M",
        notes="Fine-tuned by MMAction2 from the K710 B/16 model; its head starts from the K710 head "
        "(channel map k710 -> k700).",
    ),
    _mm(
        f"{_L}_clip-kinetics710-pre_u8_kinetics700-rgb",
        "l14",
        "kinetics700",
        8,
        4,
        _ported("kinetics700", f"{_L}_clip-kinetics710-pre_u8_kinetics700-rgb", "20221219-bfb9f401"),
        "clip-kinetics710",
        top=(80.8, 95.2),
        reference=(80.8, 95.4),
        mm_kinetics=(79.4, 94.8),
        flops="0.7T",
        params="354M",
        notes=_PORTED,
    ),
    _mm(
        f"{_L}_clip-kinetics710-pre_u16_kinetics700-rgb",
        "l14",
        "kinetics700",
        16,
        4,
        _ported("kinetics700", f"{_L}_clip-kinetics710-pre_u16_kinetics700-rgb", "20221219-745209d2"),
        "clip-kinetics710",
        top=(81.2, 95.6),
        reference=(81.2, 95.6),
        mm_kinetics=(79.2, 95.0),
        flops="1.3T",
        params="354M",
        notes=_PORTED,
    ),
    _mm(
        f"{_L}_clip-kinetics710-pre_u32_kinetics700-rgb",
        "l14",
        "kinetics700",
        32,
        2,
        _ported("kinetics700", f"{_L}_clip-kinetics710-pre_u32_kinetics700-rgb", "20221219-eebe7056"),
        "clip-kinetics710",
        top=(81.4, 95.7),
        reference=(81.5, 95.7),
        mm_kinetics=(79.8, 95.3),
        flops="2.7T",
        params="354M",
        notes=f"{_PORTED} {_U32_CLIPS}",
    ),
    _mm(
        f"{_L336}_clip-kinetics710-pre_u32_kinetics700-rgb",
        "l14_336",
        "kinetics700",
        32,
        2,
        _ported("kinetics700", f"{_L336}_clip-kinetics710-pre_u32_kinetics700-rgb", "20221219-95cf9046"),
        "clip-kinetics710",
        top=(82.1, 96.0),
        reference=(82.1, 96.1),
        mm_kinetics=(80.6, 95.6),
        flops="6.3T",
        params="354M",
        notes=f"{_PORTED} URL from the README (metafile.yml repeats the L/14 8-frame K700 stamp by mistake).",
    ),
    # Moments in Time V1 (the README's "large-p16" names are ViT-L/14 models, as their configs say)
    _mm(
        f"{_B}_clip-kinetics710-kinetics-k400-pre_16xb32-u8_mitv1-rgb",
        "b16",
        "mitv1",
        8,
        4,
        _own(f"{_B}_clip-kinetics710-kinetics-k400-pre_16xb32-u8_mitv1-rgb", "20230313-a6f4a567"),
        "clip-kinetics710-kinetics400",
        top=(42.3, 71.5),
        reference=(42.6, 71.7),
        flops="0.1T",
        params="115M",
        notes="Fine-tuned by MMAction2 from the K710+K400 B/16 model.",
    ),
    _mm(
        "uniformerv2-large-p16-res224_clip-kinetics710-kinetics-k400-pre_u8_mitv1-rgb",
        "l14",
        "mitv1",
        8,
        4,
        _ported(
            "mitv1", "uniformerv2-large-p16-res224_clip-kinetics710-kinetics-k400-pre_u8_mitv1-rgb", "20221219-882c0598"
        ),
        "clip-kinetics710-kinetics400",
        top=(47.0, 76.1),
        reference=(47.0, 76.1),
        flops="0.7T",
        params="354M",
        notes=f"{_PORTED} Named 'p16' but the network is ViT-L/14 (patch_size=14).",
    ),
    _mm(
        "uniformerv2-large-p16-res336_clip-kinetics710-kinetics-k400-pre_u8_mitv1-rgb",
        "l14_336",
        "mitv1",
        8,
        4,
        _ported(
            "mitv1", "uniformerv2-large-p16-res336_clip-kinetics710-kinetics-k400-pre_u8_mitv1-rgb", "20221219-9020986e"
        ),
        "clip-kinetics710-kinetics400",
        top=(47.7, 76.8),
        reference=(47.8, 76.0),
        flops="1.6T",
        params="354M",
        notes=f"{_PORTED} Named 'p16' but the network is ViT-L/14 (patch_size=14).",
    ),
    # Kinetics-710 (no testing protocol in the README and no test pipeline in the configs: the original 4x3)
    _mm(
        f"{_B}_clip-pre_u8_kinetics710-rgb",
        "b16",
        "kinetics710",
        8,
        4,
        _own(f"{_B}_clip-pre_u8_kinetics710-rgb", "20230612-63cdbad9"),
        "clip",
        top=(78.9, 94.2),
        notes="Ported K710 model (README '*'); URL from the README (metafile.yml omits the folder). "
        "Test protocol assumed 4 clips x 3 crops, as in the original run.sh.",
    ),
    _mm(
        f"{_B}_clip_u8_kinetics710-rgb",
        "b16",
        "kinetics710",
        8,
        4,
        None,
        "clip",
        notes="MMAction2's training config for K710 from CLIP; the README lists no checkpoint for it "
        f"(the published K710 B/16 weights are those of '{_B}_clip-pre_u8_kinetics710-rgb').",
    ),
    _mm(
        f"{_L}_clip-pre_u8_kinetics710-rgb",
        "l14",
        "kinetics710",
        8,
        4,
        _ported("kinetics710", f"{_L}_clip-pre_u8_kinetics710-rgb", "20230612-d002a407"),
        "clip",
        notes="Ported K710 model (README '*'); the README reports no accuracy. "
        "Test protocol assumed 4 clips x 3 crops, as in the original run.sh.",
    ),
    _mm(
        f"{_L336}_clip-pre_u8_kinetics710-rgb",
        "l14_336",
        "kinetics710",
        8,
        4,
        _ported("kinetics710", f"{_L336}_clip-pre_u8_kinetics710-rgb", "20230612-d723ddc1"),
        "clip",
        notes="Ported K710 model (README '*'); the README reports no accuracy. The config sets num_frames=32 but "
        "its name ('u8'), the README and the original model are 8 frames; t_size has no parameters. "
        "Test protocol assumed 4 clips x 3 crops, as in the original run.sh.",
    ),
]


# --------------------------------------------------------------------------------------------------------------
# The authors' repository (MODEL_ZOO.md; exp/<dataset>/<exp>/config.yaml with run.sh overrides)
# --------------------------------------------------------------------------------------------------------------


def _orig(
    stem: str,
    arch: str,
    dataset: str,
    frames: int,
    crops: int,
    clips: int,
    top1: float | None,
    pretrain: str,
    folder: str,
    *,
    frozen: bool = False,
    notes: str = "",
    grad_checkpoint_blocks: int = 0,
    **arch_overrides: Any,
) -> Preset:
    """A preset for one .pyth checkpoint of the original MODEL_ZOO."""
    build, clip_model = _ARCHS[arch]
    config = build(t_size=frames, num_classes=NUM_CLASSES[dataset], dropout_ratio=0.5, frozen=frozen, **arch_overrides)
    label_map = "mitv1" if dataset == "mitv1" else None
    return Preset(
        name=stem,
        config=config,
        source="original",
        dataset=dataset,
        num_frames=frames,
        resolution=config.input_resolution,
        num_clips=clips,
        num_crops=crops,
        url=f"{_ORIGINAL_URL}/{folder}/{stem}.pyth",
        checkpoint_format="pyth",
        pretrain=pretrain,
        clip_model=clip_model,
        label_map=label_map,
        top1=top1,
        sampling="original",
        notes=notes,
        grad_checkpoint_blocks=grad_checkpoint_blocks,
    )


_KINETICS_ORDER = (
    "Class order of the authors' Kinetics label files, which differs from MMAction2's "
    "(MMAction2 remapped its ported heads by label name); no label map is shipped for it."
)
_VIEWS_32_64 = "MODEL_ZOO gives {frames}x3x2 (3 crops, 2 clips); run.sh tests 4 clips x 3 crops."
_VIEWS_FROZEN_32 = "MODEL_ZOO gives 32x3x4 (3 crops, 4 clips); run.sh tests 3 clips x 1 crop."
_C, _CK, _CKK = "clip", "clip-kinetics710", "clip-kinetics710-kinetics400"


def _kinetics_original(
    dataset: str, short: str, tops: tuple[float, ...], frozen_tops: tuple[float, ...]
) -> list[Preset]:
    """The ten K400/K600/K700 checkpoints of MODEL_ZOO, which share one layout across the three datasets."""
    b16_clip, b16_k710, l8, l16, l32, l336_32, l336_64 = tops
    f8_clip, f8_k710, f32_k710 = frozen_tops
    k = _KINETICS_ORDER
    return [
        _orig(f"{short}_uniformerv2_b16_8x224", "b16", dataset, 8, 3, 4, b16_clip, _C, short, notes=k),
        _orig(f"{short}_k710_uniformerv2_b16_8x224", "b16", dataset, 8, 3, 4, b16_k710, _CK, short, notes=k),
        _orig(f"{short}_k710_uniformerv2_l14_8x224", "l14", dataset, 8, 3, 4, l8, _CK, short, notes=k),
        _orig(f"{short}_k710_uniformerv2_l14_16x224", "l14", dataset, 16, 3, 4, l16, _CK, short, notes=k),
        _orig(
            f"{short}_k710_uniformerv2_l14_32x224",
            "l14",
            dataset,
            32,
            3,
            2,
            l32,
            _CK,
            short,
            notes=f"{k} {_VIEWS_32_64.format(frames=32)}",
        ),
        _orig(
            f"{short}_k710_uniformerv2_l14_32x336",
            "l14_336",
            dataset,
            32,
            3,
            2,
            l336_32,
            _CK,
            short,
            notes=f"{k} {_VIEWS_32_64.format(frames=32)}",
            **_CKPT24,
        ),
        _orig(
            f"{short}_k710_uniformerv2_l14_64x336",
            "l14_336",
            dataset,
            64,
            3,
            2,
            l336_64,
            _CK,
            short,
            notes=f"{k} {_VIEWS_32_64.format(frames=64)}",
            **_CKPT24,
        ),
        _orig(
            f"frozen_{short}_uniformerv2_l14_8x336",
            "l14_336",
            dataset,
            8,
            1,
            3,
            f8_clip,
            _C,
            short,
            frozen=True,
            notes=f"{k} Frozen CLIP backbone, no fusion (video token only).",
        ),
        _orig(
            f"frozen_{short}_k710_uniformerv2_l14_8x336",
            "l14_336",
            dataset,
            8,
            1,
            3,
            f8_k710,
            _CK,
            short,
            frozen=True,
            notes=f"{k} Frozen CLIP backbone, no fusion (video token only).",
        ),
        _orig(
            f"frozen_{short}_k710_uniformerv2_l14_32x336",
            "l14_336",
            dataset,
            32,
            3,
            4,
            f32_k710,
            _CK,
            short,
            frozen=True,
            notes=f"{k} Frozen CLIP backbone, no fusion (video token only). {_VIEWS_FROZEN_32}",
        ),
    ]


_K710_NOTE = "Kinetics-710 post-pretraining model; MODEL_ZOO reports no accuracy. " + _KINETICS_ORDER

_ORIGINAL: list[Preset] = [
    # Kinetics-710 (test views from run.sh)
    _orig("k710_uniformerv2_b16_8x224", "b16", "kinetics710", 8, 3, 4, None, _C, "k710", notes=_K710_NOTE),
    _orig("k710_uniformerv2_l14_8x224", "l14", "kinetics710", 8, 3, 4, None, _C, "k710", notes=_K710_NOTE),
    _orig("k710_uniformerv2_l14_8x336", "l14_336", "kinetics710", 8, 3, 4, None, _C, "k710", notes=_K710_NOTE),
    _orig(
        "frozen_k710_uniformerv2_l14_8x336",
        "l14_336",
        "kinetics710",
        8,
        1,
        3,
        None,
        _C,
        "k710",
        frozen=True,
        notes=f"{_K710_NOTE} Frozen CLIP backbone, no fusion (video token only).",
    ),
    # Kinetics-400/600/700
    *_kinetics_original("kinetics400", "k400", (84.4, 85.6, 88.8, 89.1, 89.3, 89.7, 90.0), (86.7, 87.8, 88.9)),
    *_kinetics_original("kinetics600", "k600", (85.0, 86.1, 89.0, 89.4, 89.5, 89.9, 90.1), (87.4, 88.2, 89.2)),
    *_kinetics_original("kinetics700", "k700", (75.8, 76.3, 80.8, 81.2, 81.5, 82.1, 82.7), (79.6, 79.7, 80.8)),
    # Moments in Time V1
    _orig("mit_uniformerv2_b16_8x224", "b16", "mitv1", 8, 3, 4, 42.6, _CKK, "mitv1"),
    _orig("mit_uniformerv2_l14_8x224", "l14", "mitv1", 8, 3, 4, 47.0, _CKK, "mitv1"),
    _orig("mit_uniformerv2_l14_8x336", "l14_336", "mitv1", 8, 3, 4, 47.8, _CKK, "mitv1", grad_checkpoint_blocks=21),
    # Something-Something V1 and V2
    _orig("sthv1_uniformerv2_b16_16x224", "b16", "sthv1", 16, 3, 1, 56.8, _C, "sthv1", **_STH_B16),
    _orig("sthv1_uniformerv2_b16_32x224", "b16", "sthv1", 32, 3, 1, 59.4, _C, "sthv1", **_STH_B16),
    _orig("sthv1_uniformerv2_l14_16x224", "l14", "sthv1", 16, 3, 1, 60.5, _C, "sthv1", **_STH_L14),
    _orig("sthv1_uniformerv2_l14_32x224", "l14", "sthv1", 32, 3, 1, 62.7, _C, "sthv1", **_STH_L14),
    _orig("sthv2_uniformerv2_b16_16x224", "b16", "sthv2", 16, 3, 1, 69.5, _C, "sthv2", **_STH_B16),
    _orig("sthv2_uniformerv2_b16_32x224", "b16", "sthv2", 32, 3, 1, 70.7, _C, "sthv2", **_STH_B16),
    _orig("sthv2_uniformerv2_l14_16x224", "l14", "sthv2", 16, 3, 1, 72.1, _C, "sthv2", **_STH_L14),
    _orig("sthv2_uniformerv2_l14_32x224", "l14", "sthv2", 32, 3, 1, 73.0, _C, "sthv2", **_STH_L14),
    # ActivityNet and HACS
    _orig("anet_uniformerv2_l14_16x224", "l14", "activitynet", 16, 3, 10, 94.3, _CKK, "anet", **_UNTRIMMED),
    _orig("anet_uniformerv2_l14_32x224", "l14", "activitynet", 32, 3, 10, 94.7, _CKK, "anet", **_UNTRIMMED),
    _orig("hacs_uniformerv2_l14_16x224", "l14", "hacs", 16, 3, 10, 95.5, _CKK, "hacs", **_UNTRIMMED),
    _orig("hacs_uniformerv2_l14_32x224", "l14", "hacs", 32, 3, 10, 95.4, _CKK, "hacs", **_UNTRIMMED),
]

_PRESETS: dict[str, Preset] = {p.name: p for p in (*_MMACTION2, *_ORIGINAL)}
assert len(_PRESETS) == len(_MMACTION2) + len(_ORIGINAL), "duplicate preset names"


def list_models(pattern: str | None = None, *, source: str | None = None) -> list[str]:
    """Sorted preset names, optionally filtered by a case-insensitive glob and by source."""
    if source is not None and source not in ("mmaction2", "original"):
        raise UsageError(f"source must be 'mmaction2' or 'original', got {source!r}")
    names = (n for n, p in _PRESETS.items() if source is None or p.source == source)
    if pattern is not None:
        pat = pattern.lower()
        names = (n for n in names if fnmatch.fnmatchcase(n.lower(), pat))
    return sorted(names)


def get_preset(name: str) -> Preset:
    """The preset of that exact name; UnknownModelError with close matches otherwise."""
    try:
        return _PRESETS[name]
    except (KeyError, TypeError):
        pass
    by_lower = {n.lower(): n for n in _PRESETS}
    close = [by_lower[c] for c in difflib.get_close_matches(str(name).lower(), list(by_lower), n=3, cutoff=0.5)]
    hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    raise UnknownModelError(f"unknown UniFormerV2 model {name!r}{hint} (see uniformerv2.list_models())") from None
