"""Fine-tuning with MMAction2 1.2.0's UniFormerV2 recipe, exact resume, and the ``uniformerv2 train`` command.

The defaults of :class:`TrainConfig` are the recipe of MMAction2's B/16 configs (``..._8xb32-u8_kinetics400-rgb``
fine-tuned from Kinetics-710): AdamW (betas 0.9/0.999, weight decay 0.05, none on norms and biases), base learning
rate 2e-6 for a total batch of 256 scaled linearly with the real one, one epoch of linear warm-up from 0.5x, then
cosine annealing to 0.5x over 4 epochs (per optimiser step), gradient clipping at norm 20, 5 epochs; training
views of ``UniformSample``, short side 256, RandAugment (m7, n4), RandomResizedCrop, 224x224, flip 0.5 (see
:mod:`uniformerv2.data.augment`); head dropout 0.5; validation each epoch with one centre-cropped clip.

Exact resume. The data order is a function of (seed, epoch) (:class:`ResumableSampler`), every training item's
randomness a function of (seed, epoch, index) (:class:`uniformerv2.data.augment.TrainClipsDataset`), and the
DataLoader has its own generator so that it never draws from the global RNG. A checkpoint holds the model,
optimiser, schedule and grad scaler states, every RNG state (of every rank) and the position inside the epoch;
resuming from it replays exactly what the uninterrupted run would have done.

Distributed: launched with ``torchrun`` (any of its flags, multi-node included), every rank takes a
DistributedSampler-style share of each global batch; the model is wrapped in DDP (or FSDP with ``--fsdp``);
validation shards the videos across ranks. Two processes with half the batch each follow the same trajectory as
one process with the whole batch (up to float summation order), given no dropout.
"""
from __future__ import annotations

import argparse
import ast
import dataclasses
import json
import math
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from . import distributed as D
from .optim import RecipeSchedule, build_optimizer, scaled_lr
from .state import (CheckpointManager, TrainingStateError, atomic_write, capture_rng_state, find_resume_checkpoint,
                    load_training_state, restore_rng_state)

__all__ = [
    "TrainConfig", "TrainResult", "Trainer", "train", "ResumableSampler", "SampleProblem", "check_samples",
    "BadSamplesError", "add_train_command", "config_from_args", "write_curves",
]


@dataclass
class TrainConfig:
    """Every setting of a training run; the defaults are MMAction2's B/16 recipe (see the module docstring).

    Any field can be set on the command line as ``--field-name VALUE`` (tuples and dicts as Python literals).
    """

    # --- model
    model: str = "uniformerv2-base-p16-res224_clip-kinetics710-pre_8xb32-u8_kinetics400-rgb"
    init: str = "auto"  # auto | clip | pretrained | none | a checkpoint file/URL of any supported format
    clip: str | None = None  # CLIP weights for init=clip: 'ViT-B/16', 'ViT-L/14', ... or a file (default: preset's)
    num_classes: int | None = None  # default: the preset's / checkpoint's
    model_overrides: dict = field(default_factory=dict)  # MMAction2 backbone argument names
    dropout_ratio: float = 0.5  # head dropout
    frozen_backbone: bool = False
    grad_checkpoint_blocks: int = 0  # gradient checkpointing of the first N local blocks
    # --- data
    ann_file: str | None = None
    data_root: str = ""
    val_ann_file: str | None = None
    val_data_root: str | None = None  # default: data_root
    class_names: str | None = None  # label map file or shipped name (stored in the exported model)
    clip_len: int | None = None  # default: the model's t_size
    input_size: int | None = None  # default: the model's input_resolution
    short_side: int = 256
    randaug: bool = True
    randaug_magnitude: float = 7.0
    randaug_num_layers: int = 4
    randaug_prob: float = 0.5
    area_range: tuple = (0.08, 1.0)
    aspect_ratio_range: tuple = (3 / 4, 4 / 3)
    flip_ratio: float = 0.5
    backend: str = "pyav"
    num_workers: int = 2
    check_videos: bool = True  # decode-probe every video before training
    skip_bad_samples: bool = False  # drop bad samples (reported) instead of stopping
    # --- optimisation
    epochs: float = 5
    batch_size: int = 8  # per process and per micro-batch
    accum_steps: int = 1  # gradient accumulation: micro-batches per optimiser step
    base_lr: float = 2e-6
    base_batch_size: int = 256  # auto_scale_lr: lr = base_lr * batch_size * world_size * accum_steps / 256
    lr: float | None = None  # an absolute learning rate instead of the scaled base_lr
    weight_decay: float = 0.05
    betas: tuple = (0.9, 0.999)
    eps: float = 1e-8
    norm_decay_mult: float = 0.0
    bias_decay_mult: float = 0.0
    embed_decay_mult: float = 1.0
    bias_rule: str = "all"  # all: every *bias; mmengine: only parameters named 'bias'
    warmup_epochs: float = 1.0
    warmup_start_factor: float = 0.5
    eta_min_ratio: float = 0.5
    clip_grad: float | None = 20.0
    amp: str = "none"  # none | bf16 | fp16
    # --- validation
    val_interval: int = 1  # epochs
    val_num_clips: int = 1
    val_num_crops: int = 1
    val_batch_views: int = 8
    # --- runtime
    work_dir: str = "work_dirs/uniformerv2"
    device: str | None = None  # default: cuda if available
    fsdp: bool = False
    find_unused_parameters: bool = False
    seed: int = 0
    resume: str | None = None  # 'auto' (latest in work_dir) or a checkpoint path
    checkpoint_interval: int = 1  # epochs
    checkpoint_interval_steps: int = 0  # also every N optimiser steps (0: off)
    keep_last: int = 3
    log_interval: int = 10  # optimiser steps between log lines
    progress: bool = True
    max_steps: int | None = None  # stop after this many optimiser steps (smoke tests)
    threads: int | None = None  # torch.set_num_threads

    def replace(self, **overrides: Any) -> "TrainConfig":
        names = {f.name for f in dataclasses.fields(self)}
        unknown = sorted(set(overrides) - names)
        if unknown:
            raise ValueError(f"unknown training options: {', '.join(unknown)}")
        return dataclasses.replace(self, **overrides)

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        for k, v in d.items():
            if isinstance(v, tuple):
                d[k] = list(v)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "TrainConfig":
        names = {f.name: f for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - set(names))
        if unknown:
            raise ValueError(f"unknown training options: {', '.join(unknown)}")
        d = {k: tuple(v) if isinstance(v, list) and names[k].type == "tuple" else v for k, v in d.items()}
        return cls(**d)


@dataclass
class TrainResult:
    work_dir: Path
    model_path: Path | None  # the exported final model (.safetensors)
    best_path: Path | None
    best_top1: float | None
    history: list[dict[str, Any]]
    steps: int
    epochs: int
    model: nn.Module | None = None


# ----------------------------------------------------------------------------------------------- bad samples

@dataclass
class SampleProblem:
    index: int
    path: str
    kind: str  # missing | label | decode
    detail: str

    def __str__(self) -> str:
        return f"{self.path}: {self.detail}"


class BadSamplesError(ValueError):
    """Annotation entries that cannot be trained on; ``problems`` lists them all."""

    def __init__(self, ann_file: str, problems: list[SampleProblem], report: Path | None = None,
                 max_lines: int = 20) -> None:
        self.problems = problems
        counts: dict[str, int] = {}
        for p in problems:
            counts[p.kind] = counts.get(p.kind, 0) + 1
        summary = ", ".join(f"{n} {k}" for k, n in counts.items())
        lines = [f"{ann_file}: {len(problems)} bad entries ({summary}); fix them or pass --skip-bad-samples:"]
        lines += [f"  {p}" for p in problems[:max_lines]]
        if len(problems) > max_lines:
            lines.append(f"  ... and {len(problems) - max_lines} more" + (f" (all in {report})" if report else ""))
        super().__init__("\n".join(lines))


def _probe(sample: Any, backend: str) -> str | None:
    from ..data import VideoDecodeError, open_video
    try:
        with open_video(sample.path, backend) as reader:
            if reader.num_frames < 1:
                return "no frames"
            reader.read([0])
    except VideoDecodeError as e:
        return f"cannot be decoded ({e.reason})"
    except ImportError:
        raise
    except Exception as e:  # any decoder failure is the video's problem
        return f"cannot be decoded ({type(e).__name__}: {e})"
    return None


def check_samples(samples: Sequence[Any], num_classes: int | None, *, decode: bool = True, backend: str = "pyav",
                  workers: int = 4, distributed: bool = False) -> list[SampleProblem]:
    """Every problem of an annotation list: missing files, labels out of ``[0, num_classes)`` or absent,
    undecodable videos (with ``decode``: the header read and the first frame decoded). All, in list order."""
    problems: list[SampleProblem] = []
    mine = D.shard_indices(len(samples)) if distributed else list(range(len(samples)))

    def check(i: int) -> list[SampleProblem]:
        s = samples[i]
        out = []
        if s.label is None:
            out.append(SampleProblem(i, s.path, "label", "no label"))
        elif num_classes is not None and not 0 <= int(s.label) < num_classes:
            out.append(SampleProblem(i, s.path, "label", f"label {s.label} out of range [0, {num_classes})"))
        if not os.path.isfile(s.path):
            out.append(SampleProblem(i, s.path, "missing", "no such file"))
        elif decode:
            reason = _probe(s, backend)
            if reason:
                out.append(SampleProblem(i, s.path, "decode", reason))
        return out

    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        for found in pool.map(check, mine):
            problems.extend(found)
    if distributed:
        problems = [p for part in D.all_gather_objects(problems) for p in part]
    problems.sort(key=lambda p: p.index)
    return problems


# ---------------------------------------------------------------------------------------------------- sampler

class ResumableSampler(torch.utils.data.Sampler):
    """DistributedSampler's order (a permutation seeded by ``seed + epoch``, padded to a multiple of the world
    size, rank ``r`` taking positions ``r, r + world, ...``), yielding ``(epoch, index)`` and able to start at any
    position of an epoch."""

    def __init__(self, n: int, *, rank: int = 0, world_size: int = 1, seed: int = 0, shuffle: bool = True) -> None:
        if n < 1:
            raise ValueError("no training samples")
        self.n, self.rank, self.world_size, self.seed, self.shuffle = n, rank, world_size, seed, shuffle
        self.num_samples = math.ceil(n / world_size)
        self.epoch = 0
        self.start = 0

    def set_epoch(self, epoch: int, start: int = 0) -> None:
        self.epoch, self.start = int(epoch), int(start)

    def indices(self, epoch: int) -> list[int]:
        if self.shuffle:
            g = torch.Generator()
            g.manual_seed(self.seed + epoch)
            order = torch.randperm(self.n, generator=g).tolist()
        else:
            order = list(range(self.n))
        total = self.num_samples * self.world_size
        while len(order) < total:
            order += order[:total - len(order)]
        return order[self.rank:total:self.world_size]

    def __iter__(self) -> Iterator[tuple[int, int]]:
        for i in self.indices(self.epoch)[self.start:]:
            yield (self.epoch, i)

    def __len__(self) -> int:
        return self.num_samples - self.start


def _collate(batch: list[tuple[torch.Tensor, int]]) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.stack([b[0] for b in batch]), torch.tensor([b[1] for b in batch], dtype=torch.long)


# ------------------------------------------------------------------------------------------------------ model

def build_model(cfg: TrainConfig) -> nn.Module:
    """The model of a run: the preset or our checkpoint ``cfg.model``, initialised as ``cfg.init`` says.

    ``init``: ``auto`` (a preset: its CLIP weights, as MMAction2's configs; a file: its own weights), ``clip``
    (``cfg.clip`` or the preset's CLIP), ``pretrained`` (the preset's published checkpoint), ``none`` (random), or
    any checkpoint file/URL: CLIP (OpenAI, open_clip, Hugging Face), a Kinetics-710 model (its head mapped through
    the channel map onto a 400/600/700-class model), MMAction2, original or ours. A head of another class count is
    left freshly initialised; every other key must fit.
    """
    from ..checkpoint import load_checkpoint, read_config
    from ..factory import init_from_clip
    from ..model import UniFormerV2
    from ..zoo import CLIP_CHECKPOINT_URLS, get_preset

    overrides = dict(cfg.model_overrides)
    for key in ("return_list", "mlp_dropout"):
        if isinstance(overrides.get(key), list):
            overrides[key] = tuple(overrides[key])
    overrides["dropout_ratio"] = cfg.dropout_ratio
    if cfg.grad_checkpoint_blocks:
        overrides.update(use_checkpoint=True, checkpoint_num=int(cfg.grad_checkpoint_blocks))
    if cfg.num_classes is not None:
        overrides["num_classes"] = int(cfg.num_classes)
    is_file = os.path.isfile(cfg.model)
    preset = None
    if is_file:
        arch = read_config(cfg.model)
        if arch is None:
            raise ValueError(f"{cfg.model}: not one of our .safetensors checkpoints (which record their "
                             "architecture); name a preset and pass the file as --init")
    else:
        preset = get_preset(cfg.model)
        arch = preset.config
    model = UniFormerV2(arch.replace(**overrides))
    init = cfg.init
    if init == "auto":
        init = cfg.model if is_file else "clip"
    if init == "pretrained":
        if preset is None or not preset.url:
            raise ValueError(f"init=pretrained: {cfg.model!r} has no published checkpoint")
        init = preset.url
    if init == "clip":
        clip = cfg.clip or (preset.clip_model if preset is not None else None)
        if not clip:
            raise ValueError("init=clip needs --clip (ViT-B/16, ViT-L/14, ViT-L/14_336 or a CLIP weights file)")
        init_from_clip(model, CLIP_CHECKPOINT_URLS.get(clip, clip), progress=cfg.progress)
    elif init != "none":
        import warnings
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*head keeps its fresh initialisation.*")
            report = load_checkpoint(model, init, strict=False, progress=cfg.progress)
        missing = [k for k in report.get("missing", []) if not k.startswith("cls_head.")]
        if missing or report.get("unexpected"):
            from ..checkpoint import CheckpointError
            raise CheckpointError(f"{init}: does not fit the model: missing {missing[:5]}, unexpected "
                                  f"{report.get('unexpected', [])[:5]}")
    if cfg.frozen_backbone:
        model.freeze_backbone()
    return model.train()


# ------------------------------------------------------------------------------------------------------ logs

def write_curves(history: list[dict[str, Any]], path: str | os.PathLike) -> Path | None:
    """Loss, accuracy and learning-rate curves as a PNG (None when matplotlib is missing)."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    train = [h for h in history if h.get("type") == "train"]
    val = [h for h in history if h.get("type") == "val"]
    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    if train:
        e = [h["epoch_float"] for h in train]
        axes[0].plot(e, [h["loss"] for h in train], label="train loss")
        axes[1].plot(e, [h["acc"] for h in train], label="train top-1 (augmented batches)")
        axes[2].plot(e, [h["lr"] for h in train])
    if val:
        axes[1].plot([h["epoch"] for h in val], [h["top1"] for h in val], "o-", label="val top-1")
        if "loss" in val[0]:
            axes[0].plot([h["epoch"] for h in val], [h["loss"] for h in val], "o-", label="val loss")
    for ax, title in zip(axes, ("loss", "accuracy", "learning rate")):
        ax.set_title(title)
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
    axes[0].legend()
    axes[1].legend()
    axes[1].set_ylim(-0.02, 1.02)
    fig.tight_layout()
    path = Path(path)
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=90))
    plt.close(fig)
    return path


class _JsonLog:
    def __init__(self, path: Path, enabled: bool) -> None:
        self.path, self.enabled = path, enabled

    def truncate_after(self, global_step: int) -> None:
        """On resume: drop what a killed run logged after its checkpoint."""
        if not self.enabled or not self.path.is_file():
            return
        keep = []
        for line in self.path.read_text().splitlines():
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                continue
            if rec.get("global_step", 0) <= global_step:
                keep.append(line)
        text = "".join(line + "\n" for line in keep)
        atomic_write(self.path, lambda tmp: Path(tmp).write_text(text))

    def write(self, rec: dict[str, Any]) -> None:
        if self.enabled:
            with open(self.path, "a") as f:
                f.write(json.dumps(rec) + "\n")


# ---------------------------------------------------------------------------------------------------- trainer

_AMP = {"none": None, "no": None, "fp32": None, "bf16": torch.bfloat16, "bfloat16": torch.bfloat16,
        "fp16": torch.float16, "float16": torch.float16}


class Trainer:
    """One training run: ``Trainer(cfg).fit()``; see the module docstring.

    ``train_samples``/``val_samples`` (``VideoSample`` lists) replace the annotation files; ``model`` replaces
    :func:`build_model`; ``callbacks`` are called as ``cb(trainer, event, info)`` with event 'step' (after every
    optimiser step), 'epoch' (after validation) and 'checkpoint' (after a checkpoint is written).
    """

    def __init__(self, cfg: TrainConfig, *, train_samples: Sequence[Any] | None = None,
                 val_samples: Sequence[Any] | None = None, model: nn.Module | None = None,
                 callbacks: Sequence[Callable[..., None]] = (), class_names: Sequence[str] | None = None) -> None:
        self.cfg = cfg
        self._train_samples = train_samples
        self._val_samples = val_samples
        self._model = model
        self.callbacks = list(callbacks)
        self.class_names = list(class_names) if class_names is not None else None
        self.history: list[dict[str, Any]] = []

    # ------------------------------------------------------------------------------------------- setup
    def _log(self, msg: str) -> None:
        if self.rank == 0:
            print(msg, file=sys.stderr, flush=True)

    def _samples(self, ann: str | None, root: str, given: Sequence[Any] | None, what: str) -> list[Any] | None:
        from ..data import read_annotation_list
        if given is not None:
            return list(given)
        if ann is None:
            return None
        return read_annotation_list(ann, root)

    def _check(self, samples: list[Any], num_classes: int, what: str) -> list[Any]:
        cfg = self.cfg
        problems = check_samples(samples, num_classes, decode=cfg.check_videos, backend=cfg.backend,
                                 workers=max(2, cfg.num_workers), distributed=self.world_size > 1)
        if not problems:
            return samples
        report = self.work_dir / f"bad_samples_{what}.txt"
        if self.rank == 0:
            text = "".join(f"{p.path}\t{p.kind}\t{p.detail}\n" for p in problems)
            atomic_write(report, lambda tmp: Path(tmp).write_text(text))
        source = (cfg.ann_file if what == "train" else cfg.val_ann_file) or f"{what} samples"
        if not cfg.skip_bad_samples:
            raise BadSamplesError(source, problems, report)
        bad = {p.index for p in problems}
        self._log(f"skipping {len(bad)} bad {what} samples of {len(samples)} (listed in {report})")
        kept = [s for i, s in enumerate(samples) if i not in bad]
        if not kept:
            raise BadSamplesError(source, problems, report)
        return kept

    def setup(self) -> None:
        cfg = self.cfg
        if cfg.threads:
            torch.set_num_threads(int(cfg.threads))
        if cfg.amp not in _AMP:
            raise ValueError(f"amp={cfg.amp!r}: choose none, bf16 or fp16")
        self.device = D.init_distributed(cfg.device)
        self.rank, self.world_size = D.get_rank(), D.get_world_size()
        self.work_dir = Path(cfg.work_dir)
        self.work_dir.mkdir(parents=True, exist_ok=True)
        # seeds: the model's initialisation is the same on every rank; dropout differs per rank
        torch.manual_seed(cfg.seed)
        np.random.seed(cfg.seed)
        import random
        random.seed(cfg.seed)

        train_samples = self._samples(cfg.ann_file, cfg.data_root, self._train_samples, "train")
        if not train_samples:
            raise ValueError("no training data: pass --ann-file (and --data-root)")
        val_samples = self._samples(cfg.val_ann_file, cfg.val_data_root if cfg.val_data_root is not None
                                    else cfg.data_root, self._val_samples, "val")
        num_classes = cfg.num_classes
        if num_classes is None:
            num_classes = self._model.cfg.num_classes if self._model is not None else _model_num_classes(cfg)
        # bad input is reported before anything expensive happens
        self.train_samples = self._check(train_samples, num_classes, "train")
        self.val_samples = self._check(val_samples, num_classes, "val") if val_samples else None

        model = self._model if self._model is not None else build_model(cfg)
        if self.class_names is None and cfg.class_names:
            from ..data import read_label_map
            self.class_names = read_label_map(cfg.class_names)
        self.model_cfg = model.cfg
        self.clip_len = cfg.clip_len or model.cfg.t_size
        self.size = cfg.input_size or model.cfg.input_resolution
        model.to(self.device)
        self.module = model
        torch.manual_seed(cfg.seed + self.rank)  # dropout / drop-path streams per rank

        from ..data.augment import TrainClipsDataset, TrainTransform
        tf = TrainTransform(short_side=cfg.short_side, size=self.size, randaug=cfg.randaug,
                            randaug_magnitude=cfg.randaug_magnitude, randaug_num_layers=cfg.randaug_num_layers,
                            randaug_prob=cfg.randaug_prob, area_range=tuple(cfg.area_range),
                            aspect_ratio_range=tuple(cfg.aspect_ratio_range), flip_ratio=cfg.flip_ratio)
        self.dataset = TrainClipsDataset(self.train_samples, clip_len=self.clip_len, seed=cfg.seed, transform=tf,
                                         backend=cfg.backend)
        self.sampler = ResumableSampler(len(self.dataset), rank=self.rank, world_size=self.world_size,
                                        seed=cfg.seed)
        self.batches_per_epoch = math.ceil(self.sampler.num_samples / cfg.batch_size)
        self.steps_per_epoch = math.ceil(self.batches_per_epoch / cfg.accum_steps)
        self.total_steps = int(cfg.epochs * self.steps_per_epoch)
        self.num_epochs = math.ceil(cfg.epochs)

        if self.world_size > 1:
            if cfg.fsdp:
                self.model = _wrap_fsdp(model, self.device)
            else:
                from torch.nn.parallel import DistributedDataParallel as DDP
                self.model = DDP(model, device_ids=[self.device.index] if self.device.type == "cuda" else None,
                                 find_unused_parameters=cfg.find_unused_parameters)
        else:
            self.model = model

        total_batch = cfg.batch_size * self.world_size * cfg.accum_steps
        self.lr = cfg.lr if cfg.lr is not None else scaled_lr(cfg.base_lr, total_batch, cfg.base_batch_size)
        self.optimizer = build_optimizer(self.model, self.lr, weight_decay=cfg.weight_decay,
                                         betas=tuple(cfg.betas), eps=cfg.eps, norm_decay_mult=cfg.norm_decay_mult,
                                         bias_decay_mult=cfg.bias_decay_mult, embed_decay_mult=cfg.embed_decay_mult,
                                         bias_rule=cfg.bias_rule)
        self.schedule = RecipeSchedule(self.steps_per_epoch, epochs=cfg.epochs, warmup_epochs=cfg.warmup_epochs,
                                       warmup_start_factor=cfg.warmup_start_factor, eta_min_ratio=cfg.eta_min_ratio,
                                       base_lr=self.lr)
        self.amp_dtype = _AMP[cfg.amp]
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.amp_dtype == torch.float16)
        self.ckpt = CheckpointManager(self.work_dir, keep_last=cfg.keep_last)
        self.jsonl = _JsonLog(self.work_dir / "log.jsonl", self.rank == 0)
        self.epoch, self.batches_done, self.global_step = 0, 0, 0
        self.best_top1: float | None = None
        if self.rank == 0:
            meta = {"config": cfg.to_dict(), "model_config": model.cfg.to_dict(), "world_size": self.world_size,
                    "lr": self.lr, "total_batch": total_batch, "steps_per_epoch": self.steps_per_epoch,
                    "train_videos": len(self.train_samples),
                    "val_videos": len(self.val_samples) if self.val_samples else 0}
            atomic_write(self.work_dir / "train_config.json",
                         lambda tmp: Path(tmp).write_text(json.dumps(meta, indent=1) + "\n"))

    # ------------------------------------------------------------------------------------------- state
    def _full_model_state(self) -> dict[str, torch.Tensor]:
        if self.world_size > 1 and self.cfg.fsdp:
            return _fsdp_state(self.model, None)[0]
        return {k: v.detach().cpu().clone() for k, v in self.module.state_dict().items()}

    def state_dict(self) -> dict[str, Any]:
        rngs = D.all_gather_objects(capture_rng_state())
        if self.world_size > 1 and self.cfg.fsdp:
            model_sd, optim_sd = _fsdp_state(self.model, self.optimizer)
        else:
            model_sd = {k: v.detach().cpu().clone() for k, v in self.module.state_dict().items()}
            optim_sd = self.optimizer.state_dict()
        return {
            "format": "uniformerv2-train", "version": 1,
            "model": model_sd, "model_config": json.dumps(self.model_cfg.to_dict()),
            "optimizer": optim_sd, "schedule": self.schedule.state_dict(), "scaler": self.scaler.state_dict(),
            "rng": rngs, "epoch": self.epoch, "batches_done": self.batches_done, "global_step": self.global_step,
            "best_top1": self.best_top1, "history": json.dumps(self.history), "world_size": self.world_size,
            "config": json.dumps(self.cfg.to_dict()),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if int(state.get("world_size", 1)) != self.world_size:
            raise TrainingStateError(f"the checkpoint was written by {state.get('world_size')} processes and this "
                                     f"run has {self.world_size}: exact resume needs the same world size")
        if self.world_size > 1 and self.cfg.fsdp:
            _fsdp_load(self.model, self.optimizer, state["model"], state["optimizer"])
        else:
            self.module.load_state_dict(state["model"])
            self.optimizer.load_state_dict(state["optimizer"])
        self.schedule.load_state_dict(state["schedule"])
        self.scaler.load_state_dict(state["scaler"])
        self.epoch, self.batches_done = int(state["epoch"]), int(state["batches_done"])
        self.global_step = int(state["global_step"])
        self.best_top1 = state.get("best_top1")
        self.history = json.loads(state.get("history") or "[]")
        rngs = state["rng"]
        restore_rng_state(rngs[self.rank] if len(rngs) > self.rank else rngs[0])

    def save(self, *, top1: float | None = None, is_best: bool = False) -> Path | None:
        state = self.state_dict()  # collective (RNG gather, FSDP gather): every rank
        path = None
        if self.rank == 0:
            path = self.ckpt.save(state, epoch=self.epoch, step=self.global_step, top1=top1, is_best=is_best)
            if is_best:
                self._export(self.work_dir / "best_model.safetensors", state["model"])
        D.barrier()
        for cb in self.callbacks:
            cb(self, "checkpoint", {"path": path})
        return path

    def _export(self, path: Path, model_state: dict[str, torch.Tensor]) -> Path:
        from ..checkpoint import save_checkpoint
        meta = {"class_names": json.dumps(self.class_names)} if self.class_names else None
        return save_checkpoint(model_state, path, config=self.model_cfg, extra_metadata=meta)

    def _resume(self) -> None:
        cfg = self.cfg
        if not cfg.resume:
            return
        if cfg.resume == "auto":
            path = find_resume_checkpoint(self.work_dir)
            if path is None:
                self._log(f"resume: no checkpoint in {self.work_dir / 'checkpoints'}, starting afresh")
                return
        else:
            path = Path(cfg.resume)
        state = load_training_state(path)
        self.load_state_dict(state)
        self.jsonl.truncate_after(self.global_step)
        self._log(f"resumed from {path}: epoch {self.epoch}, step {self.global_step} "
                  f"({self.batches_done} of {self.batches_per_epoch} batches of the epoch done)")

    # -------------------------------------------------------------------------------------------- loop
    def _loader(self, epoch: int, start_batch: int) -> torch.utils.data.DataLoader:
        cfg = self.cfg
        self.sampler.set_epoch(epoch, start_batch * cfg.batch_size)
        gen = torch.Generator()
        gen.manual_seed(cfg.seed)  # the loader never draws from the global RNG
        return torch.utils.data.DataLoader(
            self.dataset, batch_size=cfg.batch_size, sampler=self.sampler, num_workers=cfg.num_workers,
            collate_fn=_collate, pin_memory=self.device.type == "cuda", drop_last=False, generator=gen,
            persistent_workers=False, prefetch_factor=2 if cfg.num_workers > 0 else None)

    def _autocast(self):
        if self.amp_dtype is None:
            return nullcontext()
        return torch.autocast(self.device.type, dtype=self.amp_dtype)

    def _optimizer_step(self) -> float:
        cfg = self.cfg
        self.scaler.unscale_(self.optimizer)
        params = [p for g in self.optimizer.param_groups for p in g["params"]]
        # clipping at infinity measures the norm without changing the gradients; FSDP2 returns a DTensor
        norm = torch.nn.utils.clip_grad_norm_(params, cfg.clip_grad or math.inf)
        norm = norm.full_tensor() if hasattr(norm, "full_tensor") else norm
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.optimizer.zero_grad(set_to_none=True)
        return float(norm)

    def train_epoch(self, epoch: int) -> None:
        from tqdm.auto import tqdm
        cfg = self.cfg
        self.model.train()
        start_batch = self.batches_done
        loader = self._loader(epoch, start_batch)
        steps_this_epoch = min(self.steps_per_epoch, self.total_steps - epoch * self.steps_per_epoch)
        bar = tqdm(total=steps_this_epoch, initial=start_batch // cfg.accum_steps, unit="step", dynamic_ncols=True,
                   desc=f"epoch {epoch + 1}/{self.num_epochs}", disable=not cfg.progress or self.rank != 0,
                   file=sys.stderr)
        sums = {"loss": 0.0, "correct": 0, "n": 0}
        t0 = time.perf_counter()
        batch_in_step = 0
        micro = 0
        for batch_index, (x, y) in enumerate(loader, start=start_batch):
            step_in_epoch = batch_index // cfg.accum_steps
            if step_in_epoch >= steps_this_epoch:
                break
            first = step_in_epoch * cfg.accum_steps
            n_micro = min(cfg.accum_steps, self.batches_per_epoch - first)
            if batch_in_step == 0:
                self.schedule.apply(self.optimizer, self.global_step)
            x = x.to(self.device, non_blocking=True)
            y = y.to(self.device, non_blocking=True)
            last_micro = batch_in_step == n_micro - 1
            sync = nullcontext() if last_micro or self.world_size == 1 or cfg.fsdp else self.model.no_sync()
            with sync:
                with self._autocast():
                    logits = self.model(x)
                loss = F.cross_entropy(logits.float(), y)
                self.scaler.scale(loss / n_micro).backward()
            loss_value = float(loss.detach())
            sums["loss"] += loss_value * len(y)
            sums["correct"] += int((logits.argmax(1) == y).sum())
            sums["n"] += len(y)
            batch_in_step += 1
            micro += 1
            if not last_micro:
                continue
            grad_norm = self._optimizer_step()
            batch_in_step = 0
            self.global_step += 1
            self.batches_done = batch_index + 1
            lr = self.optimizer.param_groups[0]["lr"]
            bar.update(1)
            bar.set_postfix(loss=f"{loss_value:.4f}", lr=f"{lr:.2e}", refresh=False)
            if self.global_step % cfg.log_interval == 0 or self.batches_done == self.batches_per_epoch:
                totals = _reduce([sums["loss"], sums["correct"], sums["n"]], self.device)
                rec = {"type": "train", "epoch": epoch + 1, "global_step": self.global_step,
                       "epoch_float": epoch + (step_in_epoch + 1) / self.steps_per_epoch,
                       "lr": lr, "loss": totals[0] / max(1, totals[2]), "acc": totals[1] / max(1, totals[2]),
                       "grad_norm": grad_norm, "time_per_step": (time.perf_counter() - t0) / max(1, micro)
                       * cfg.accum_steps}
                self.history.append(rec)
                self.jsonl.write(rec)
                sums = {"loss": 0.0, "correct": 0, "n": 0}
                t0, micro = time.perf_counter(), 0
            for cb in self.callbacks:
                cb(self, "step", {"epoch": epoch, "global_step": self.global_step, "loss": loss_value})
            if cfg.checkpoint_interval_steps and self.global_step % cfg.checkpoint_interval_steps == 0 \
                    and self.batches_done < self.batches_per_epoch:
                self.save()
            if cfg.max_steps is not None and self.global_step >= cfg.max_steps:
                break
        bar.close()

    def validate(self, epoch: int) -> dict[str, float] | None:
        if not self.val_samples:
            return None
        from .evaluate import evaluate
        cfg = self.cfg
        fsdp = self.world_size > 1 and cfg.fsdp
        net = self.model if fsdp else self.module
        result = evaluate(net, self.val_samples, clip_len=self.clip_len, num_clips=cfg.val_num_clips,
                          num_crops=cfg.val_num_crops, size=self.size, batch_views=cfg.val_batch_views,
                          num_workers=cfg.num_workers, device=self.device,
                          dtype=None if self.amp_dtype is None else self.amp_dtype, progress=False,
                          backend=cfg.backend, distributed=self.world_size > 1 and not fsdp)
        self.model.train()
        m = dict(result.metrics)
        if result.failures:
            m["failures"] = len(result.failures)
        labels = torch.tensor([int(lab) for lab in result.labels], dtype=torch.long)
        if len(labels):
            m["loss"] = float(F.nll_loss(result.scores.clamp_min(1e-12).log(), labels))
        return m

    def fit(self) -> TrainResult:
        self.setup()
        self._resume()
        cfg = self.cfg
        if self.rank == 0:
            self._log(f"training {len(self.train_samples)} videos on {self.world_size} process(es) ({self.device}): "
                      f"{self.steps_per_epoch} steps/epoch x {cfg.epochs} epochs, lr {self.lr:.3g}, "
                      f"total batch {cfg.batch_size * self.world_size * cfg.accum_steps}; work dir {self.work_dir}")
        stop = False
        while self.epoch < self.num_epochs and not stop:
            epoch = self.epoch
            if self.batches_done < self.batches_per_epoch and self.global_step < self.total_steps:
                self.train_epoch(epoch)
            stop = (cfg.max_steps is not None and self.global_step >= cfg.max_steps)
            epoch_done = self.batches_done >= self.batches_per_epoch or self.global_step >= self.total_steps
            if not epoch_done:
                break
            metrics = None
            if self.val_samples and ((epoch + 1) % cfg.val_interval == 0 or epoch + 1 == self.num_epochs):
                metrics = self.validate(epoch)
            is_best = False
            if metrics is not None and "top1" in metrics:
                rec = {"type": "val", "epoch": epoch + 1, "global_step": self.global_step, **metrics}
                self.history.append(rec)
                self.jsonl.write(rec)
                is_best = self.best_top1 is None or metrics["top1"] > self.best_top1
                if is_best:
                    self.best_top1 = metrics["top1"]
                self._log(f"epoch {epoch + 1}: val top-1 {metrics['top1']:.4f}"
                          + (" (best)" if is_best else ""))
            self.epoch, self.batches_done = epoch + 1, 0
            for cb in self.callbacks:
                cb(self, "epoch", {"epoch": epoch, "metrics": metrics})
            last = self.epoch >= self.num_epochs or self.global_step >= self.total_steps
            if last or is_best or self.epoch % cfg.checkpoint_interval == 0:
                self.save(top1=metrics.get("top1") if metrics else None, is_best=is_best)
            if self.rank == 0:
                write_curves(self.history, self.work_dir / "curves.png")
            if self.global_step >= self.total_steps:
                break
        model_path = None
        model_sd = self._full_model_state()  # collective under FSDP
        if self.rank == 0:
            model_path = self._export(self.work_dir / "model.safetensors", model_sd)
            write_curves(self.history, self.work_dir / "curves.png")
        D.barrier()
        best = self.work_dir / "best_model.safetensors"
        return TrainResult(work_dir=self.work_dir, model_path=model_path, best_path=best if best.is_file() else None,
                           best_top1=self.best_top1, history=self.history, steps=self.global_step,
                           epochs=self.epoch, model=self.module)


def _reduce(values: list[float], device: torch.device) -> list[float]:
    if D.get_world_size() == 1 or not torch.distributed.is_initialized():
        return values
    t = torch.tensor(values, dtype=torch.float64, device=device)
    torch.distributed.all_reduce(t)
    return t.tolist()


def _model_num_classes(cfg: TrainConfig) -> int:
    from ..checkpoint import read_config
    from ..zoo import get_preset
    if os.path.isfile(cfg.model):
        c = read_config(cfg.model)
        if c is None:
            raise ValueError(f"{cfg.model}: not one of our .safetensors files; name a preset")
        return c.num_classes
    return get_preset(cfg.model).config.num_classes


# ------------------------------------------------------------------------------------------------------- FSDP

def _wrap_fsdp(model: nn.Module, device: torch.device) -> nn.Module:
    """Shard every local and global UniBlock, then the rest, with FSDP2 (``fully_shard``; CPU/gloo and CUDA)."""
    from torch.distributed.fsdp import fully_shard
    from ..model import GlobalUniBlock, LocalUniBlock
    for module in model.modules():
        if isinstance(module, (LocalUniBlock, GlobalUniBlock)):
            fully_shard(module)
    fully_shard(model)
    return model


def _fsdp_state(model: nn.Module, optimizer: torch.optim.Optimizer | None) -> tuple[dict, dict]:
    """Full (unsharded) model and optimiser state on rank 0, on the CPU; empty on the other ranks. Collective."""
    from torch.distributed.checkpoint.state_dict import (StateDictOptions, get_model_state_dict,
                                                         get_optimizer_state_dict)
    options = StateDictOptions(full_state_dict=True, cpu_offload=True)
    sd = get_model_state_dict(model, options=options)
    osd = get_optimizer_state_dict(model, optimizer, options=options) if optimizer is not None else {}
    return sd, osd


def _fsdp_load(model: nn.Module, optimizer: torch.optim.Optimizer, sd: dict, osd: dict) -> None:
    """Load full model and optimiser state (every rank read the same checkpoint) into the sharded model."""
    from torch.distributed.checkpoint.state_dict import (StateDictOptions, set_model_state_dict,
                                                         set_optimizer_state_dict)
    options = StateDictOptions(full_state_dict=True)
    set_model_state_dict(model, sd, options=options)
    set_optimizer_state_dict(model, optimizer, osd, options=options)


def train(cfg: TrainConfig | None = None, **kwargs: Any) -> TrainResult:
    """``train(TrainConfig(...))`` or ``train(model=..., ann_file=..., work_dir=...)``; returns a TrainResult."""
    trainer_kw = {k: kwargs.pop(k) for k in ("train_samples", "val_samples", "callbacks", "class_names")
                  if k in kwargs}
    if "model" in kwargs and isinstance(kwargs["model"], nn.Module):
        trainer_kw["model"] = kwargs.pop("model")
    cfg = (cfg or TrainConfig()).replace(**kwargs) if kwargs else (cfg or TrainConfig())
    return Trainer(cfg, **trainer_kw).fit()


# -------------------------------------------------------------------------------------------------------- CLI

def _field_parser(f: dataclasses.Field) -> Callable[[str], Any]:
    t = str(f.type)
    if t in ("int",):
        return int
    if t in ("float",):
        return float
    if t.startswith("int |"):
        return lambda s: None if s.lower() == "none" else int(s)
    if t.startswith("float |"):
        return lambda s: None if s.lower() in ("none", "0", "off") and f.name == "clip_grad" else (
            None if s.lower() == "none" else float(s))
    if t in ("tuple", "dict"):
        def lit(s: str) -> Any:
            try:
                v = ast.literal_eval(s)
            except (ValueError, SyntaxError):
                raise argparse.ArgumentTypeError(f"expected a Python literal, got {s!r}") from None
            return tuple(v) if t == "tuple" else dict(v)
        return lit
    if t.startswith("str |"):
        return lambda s: None if s.lower() == "none" else s
    return str


_SHORT_HELP = {
    "init": "auto (preset: CLIP; file: itself) | clip | pretrained | none | CHECKPOINT (CLIP, Kinetics-710 via the "
            "channel map, MMAction2, original, ours)",
    "resume": "'auto' (the latest checkpoint in --work-dir) or a checkpoint path",
    "amp": "none | bf16 | fp16 (autocast; fp16 with a grad scaler)",
    "grad_checkpoint_blocks": "gradient checkpointing of the first N local blocks",
}


def add_train_command(subparsers: Any) -> argparse.ArgumentParser:
    """``uniformerv2 train MODEL --ann-file ... --work-dir ...``: every TrainConfig field is an option."""
    p = subparsers.add_parser(
        "train", help="fine-tune a model (MMAction2's UniFormerV2 B/16 recipe by default; torchrun for several GPUs)",
        description="Fine-tune UniFormerV2 with MMAction2's recipe. Every field of "
                    "uniformerv2.engine.train.TrainConfig is an option; --config FILE (JSON, or a Python file "
                    "defining `config = TrainConfig(...)` or a dict) sets many at once, options override it. "
                    "Launch with `torchrun --nproc-per-node N -m uniformerv2.cli train ...` for several processes.")
    p.add_argument("model", nargs="?", default=argparse.SUPPRESS,
                   help="a preset name (`uniformerv2 list`) or one of our .safetensors checkpoints")
    p.add_argument("--config", dest="config_file", metavar="FILE", help="a JSON or Python training config")
    p.add_argument("--set", dest="model_set", nargs="*", metavar="KEY=VALUE",
                   help="architecture overrides (MMAction2 backbone argument names)")
    p.add_argument("--no-progress", dest="progress", action="store_false", default=argparse.SUPPRESS)
    for f in dataclasses.fields(TrainConfig):
        if f.name in ("model", "progress", "model_overrides"):
            continue
        flag = "--" + f.name.replace("_", "-")
        help_text = _SHORT_HELP.get(f.name, f"default: {_default_text(f)}")
        if str(f.type) == "bool":
            p.add_argument(flag, dest=f.name, action=argparse.BooleanOptionalAction, default=argparse.SUPPRESS,
                           help=help_text)
        else:
            kwargs: dict[str, Any] = dict(dest=f.name, type=_field_parser(f), default=argparse.SUPPRESS,
                                          metavar=f.name.upper(), help=help_text)
            if f.name == "resume":
                kwargs.update(nargs="?", const="auto")
            p.add_argument(flag, **kwargs)
    p.set_defaults(func=cmd_train)
    return p


def _default_text(f: dataclasses.Field) -> str:
    if f.default is not dataclasses.MISSING:
        return repr(f.default)
    return "(computed)"


def _load_config_file(path: str) -> TrainConfig:
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"{path}: no such config file")
    if p.suffix == ".json":
        return TrainConfig.from_dict(json.loads(p.read_text()))
    ns: dict[str, Any] = {"TrainConfig": TrainConfig}
    exec(compile(p.read_text(), str(p), "exec"), ns)  # the user's own config file
    obj = ns.get("config")
    if isinstance(obj, TrainConfig):
        return obj
    if isinstance(obj, dict):
        return TrainConfig.from_dict(obj)
    raise ValueError(f"{path}: define `config = TrainConfig(...)` or `config = dict(...)`")


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    cfg = _load_config_file(args.config_file) if getattr(args, "config_file", None) else TrainConfig()
    names = {f.name for f in dataclasses.fields(TrainConfig)}
    overrides = {k: v for k, v in vars(args).items() if k in names}
    if getattr(args, "model_set", None):
        from ..cli import parse_overrides
        overrides["model_overrides"] = {**cfg.model_overrides, **parse_overrides(args.model_set)}
    return cfg.replace(**overrides)


def cmd_train(args: argparse.Namespace) -> int:
    cfg = config_from_args(args)
    try:
        result = Trainer(cfg).fit()
    finally:
        D.destroy_distributed()
    if D.get_rank() == 0:
        print(f"trained {result.steps} steps ({result.epochs} epochs); model: {result.model_path}"
              + (f"; best val top-1 {result.best_top1:.4f}: {result.best_path}" if result.best_top1 is not None
                 else "") + f"; log: {result.work_dir / 'log.jsonl'}; curves: {result.work_dir / 'curves.png'}")
    return 0
