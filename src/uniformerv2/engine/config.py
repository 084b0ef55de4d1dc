"""Every setting of a training run: :class:`TrainConfig`, whose defaults are MMAction2 1.2.0's B/16 recipe; and
what a run gives back, :class:`TrainResult`.

The recipe (``uniformerv2-base-p16-res224_clip-kinetics710-pre_8xb32-u8_kinetics400-rgb``): AdamW (betas
0.9/0.999, weight decay 0.05, none on norms and biases), base learning rate 2e-6 for a total batch of 256 scaled
linearly with the real one, one epoch of linear warm-up from 0.5x, then cosine annealing to 0.5x over 4 epochs (per
optimiser step), gradient clipping at norm 20, 5 epochs; training views of ``UniformSample``, short side 256,
RandAugment (m7, n4), RandomResizedCrop, 224x224, flip 0.5; head dropout 0.5; validation each epoch with one
centre-cropped clip.

Each field's ``help`` metadata is its command-line help: ``uniformerv2 train`` makes one option per field.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from torch import nn

from ..errors import ConfigError

__all__ = ["TrainConfig", "LEGACY_NAMES"]

# Names earlier releases used for some fields; still accepted in config files, dicts and on the command line.
LEGACY_NAMES = {
    "clip_len": "frames",
    "input_size": "size",
    "class_names": "labels",
    "num_workers": "workers",
    "amp": "dtype",
    "val_num_clips": "val_clips",
    "val_num_crops": "val_crops",
}


def _f(default: Any, help: str, **kw: Any) -> Any:
    if default is dict:  # a fresh dict per instance
        return field(default_factory=dict, metadata={"help": help, **kw})
    return field(default=default, metadata={"help": help, **kw})


@dataclass
class TrainConfig:
    """Every setting of a training run; the defaults are MMAction2's B/16 recipe (see the module docstring)."""

    # --- model
    model: str = _f(
        "uniformerv2-base-p16-res224_clip-kinetics710-pre_8xb32-u8_kinetics400-rgb",
        "a preset name or one of our .safetensors checkpoints",
    )
    init: str = _f(
        "auto",
        "auto (a preset: its CLIP weights; a file: itself) | clip | pretrained | none | a "
        "checkpoint file/URL (CLIP, Kinetics-710 via the channel map, MMAction2, original, ours)",
    )
    clip: str | None = _f(
        None, "CLIP weights for --init clip: ViT-B/16, ViT-L/14, ViT-L/14_336 or a file (default: the preset's)"
    )
    num_classes: int | None = _f(None, "classes of the new head (default: the preset's or checkpoint's)")
    model_overrides: dict = _f(
        dict, "architecture overrides, MMAction2 backbone argument names (--set KEY=VALUE)", cli=False
    )
    dropout_ratio: float = _f(0.5, "head dropout")
    frozen_backbone: bool = _f(False, "freeze the CLIP part and train the rest")
    grad_checkpoint_blocks: int = _f(0, "gradient checkpointing of the first N local blocks (saves memory)")
    # --- data
    folder: str | None = _f(None, "a folder of class sub-folders: the folder names become the class names")
    val_folder: str | None = _f(None, "validation videos in class sub-folders named like --folder's")
    val_split: float = _f(0.0, "with --folder: hold out this fraction of every class for validation (seeded)")
    ann_file: str | None = _f(None, "training list, one 'path label' per line")
    data_root: str = _f("", "directory the list's paths are relative to")
    val_ann_file: str | None = _f(None, "validation list (default: no validation)")
    val_data_root: str | None = _f(None, "directory the validation list's paths are relative to (default: --data-root)")
    labels: str | None = _f(
        None, "class names: a file with one per line, or k400, k600, k700, k710, mitv1 (stored in the exported model)"
    )
    frames: int | None = _f(None, "frames per clip (default: the model's)")
    size: int | None = _f(None, "crop size in pixels (default: the model's)")
    short_side: int = _f(256, "short side the frames are resized to before augmentation")
    randaug: bool = _f(True, "RandAugment (pytorchvideo's, as the recipe)")
    randaug_magnitude: float = _f(7.0, "RandAugment magnitude")
    randaug_num_layers: int = _f(4, "RandAugment operations per clip")
    randaug_prob: float = _f(0.5, "probability of each RandAugment operation")
    area_range: tuple = _f((0.08, 1.0), "RandomResizedCrop area range, e.g. '(0.08, 1.0)'")
    aspect_ratio_range: tuple = _f((3 / 4, 4 / 3), "RandomResizedCrop aspect ratio range")
    flip_ratio: float = _f(0.5, "probability of a horizontal flip")
    backend: str = _f("pyav", "video decoder: pyav, decord or torchcodec")
    workers: int = _f(2, "DataLoader worker processes")
    check_videos: bool = _f(True, "decode-probe every video before training")
    skip_bad_samples: bool = _f(False, "drop bad list entries (reported) instead of stopping")
    # --- optimisation
    epochs: float = _f(5, "epochs (may be fractional)")
    batch_size: int = _f(8, "clips per process and per micro-batch")
    accum_steps: int = _f(1, "gradient accumulation: micro-batches per optimiser step")
    base_lr: float = _f(2e-6, "learning rate for a total batch of --base-batch-size (scaled linearly)")
    base_batch_size: int = _f(256, "the total batch --base-lr is for")
    lr: float | None = _f(None, "an absolute learning rate instead of the scaled --base-lr")
    weight_decay: float = _f(0.05, "AdamW weight decay")
    betas: tuple = _f((0.9, 0.999), "AdamW betas")
    eps: float = _f(1e-8, "AdamW epsilon")
    norm_decay_mult: float = _f(0.0, "weight decay multiplier of normalisation layers")
    bias_decay_mult: float = _f(0.0, "weight decay multiplier of biases")
    embed_decay_mult: float = _f(1.0, "weight decay multiplier of embeddings and tokens (model.no_weight_decay())")
    bias_rule: str = _f("all", "all: every *bias is a bias; mmengine: only parameters named 'bias'")
    warmup_epochs: float = _f(1.0, "epochs of linear warm-up")
    warmup_start_factor: float = _f(0.5, "learning rate factor the warm-up starts from")
    eta_min_ratio: float = _f(0.5, "learning rate factor the cosine ends at")
    clip_grad: float | None = _f(20.0, "gradient norm clipping (none or 0: off)", none_words=("none", "0", "off"))
    dtype: str = _f("none", "autocast: none | bf16 | fp16 (fp16 with a grad scaler)")
    # --- validation
    val_interval: int = _f(1, "epochs between validations")
    val_clips: int = _f(1, "clips per validation video")
    val_crops: int = _f(1, "crops per validation video (1 or 3)")
    val_batch_views: int = _f(8, "views per validation forward pass")
    # --- runtime
    work_dir: str = _f("work_dirs/uniformerv2", "where checkpoints, logs, curves and the model go")
    device: str | None = _f(None, "cpu, cuda or cuda:N (default: cuda when available)")
    fsdp: bool = _f(False, "shard the model with FSDP2 instead of DDP (under torchrun)")
    find_unused_parameters: bool = _f(False, "DDP's find_unused_parameters")
    seed: int = _f(0, "random seed (the data order and every augmentation follow from it)")
    resume: str | None = _f(
        None,
        "'auto' (the latest checkpoint in --work-dir) or a checkpoint path; --resume alone is 'auto'",
        const="auto",
    )
    checkpoint_interval: int = _f(1, "epochs between checkpoints")
    checkpoint_interval_steps: int = _f(0, "also a checkpoint every N optimiser steps (0: off)")
    keep_last: int = _f(3, "checkpoints kept")
    log_interval: int = _f(10, "optimiser steps between log records")
    progress: bool = _f(True, "progress bars")
    max_steps: int | None = _f(None, "stop after this many optimiser steps")
    threads: int | None = _f(None, "torch.set_num_threads")

    def replace(self, **overrides: Any) -> TrainConfig:
        return dataclasses.replace(self, **self._canonical(overrides))

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        for k, v in d.items():
            if isinstance(v, tuple):
                d[k] = list(v)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        d = cls._canonical(d)
        types = {f.name: f.type for f in dataclasses.fields(cls)}
        kwargs: dict[str, Any] = {
            k: tuple(v) if isinstance(v, list) and types[k] == "tuple" else v for k, v in d.items()
        }
        return cls(**kwargs)

    @classmethod
    def _canonical(cls, d: dict[str, Any]) -> dict[str, Any]:
        """``d`` with legacy names renamed; unknown names are a ConfigError."""
        out = {LEGACY_NAMES.get(k, k): v for k, v in d.items()}
        unknown = sorted(set(out) - {f.name for f in dataclasses.fields(cls)})
        if unknown:
            raise ConfigError(f"unknown training options: {', '.join(unknown)}")
        return out


@dataclass
class TrainResult:
    """What :meth:`~uniformerv2.engine.train.Trainer.fit` gives back."""

    work_dir: Path
    model_path: Path | None  # the exported final model (.safetensors)
    best_path: Path | None
    best_top1: float | None
    history: list[dict[str, Any]]
    steps: int
    epochs: int
    model: nn.Module | None = None
