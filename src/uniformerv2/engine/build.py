"""What a training run is built from: its model (:func:`build_model`: the architecture with the run's overrides,
and the initial weights ``init`` names) and its videos: from class folders (:func:`folder_samples`, with a
:func:`stratified_split` for validation), checked before anything expensive happens (:func:`checked_samples`)."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..atomic import atomic_write_text
from ..check import BadSamplesError, check_samples
from ..config import PretrainedCfg, UniFormerV2Config
from ..data import VideoSample, scan_class_folders
from ..data.augment import TrainTransform
from ..errors import DownloadError, UsageError
from ..factory import init_from_clip, model_config
from ..model import UniFormerV2
from ..protocol import Protocol
from ..zoo import CLIP_CHECKPOINT_URLS, Preset
from . import distributed as D
from .config import TrainConfig
from .optim import RecipeSchedule, build_optimizer

__all__ = ["build_model", "run_architecture", "folder_samples", "stratified_split", "checked_samples"]


def build_model(cfg: TrainConfig) -> UniFormerV2:
    """The model of a run: the preset or our checkpoint ``cfg.model``, initialised as ``cfg.init`` says.

    ``init``: ``auto`` (a preset: its CLIP weights, as MMAction2's configs; a file: its own weights), ``clip``
    (``cfg.clip`` or the preset's CLIP), ``pretrained`` (the preset's published checkpoint), ``none`` (random), or
    any checkpoint file/URL: CLIP (OpenAI, open_clip, Hugging Face), a Kinetics-710 model (its head mapped through
    the channel map onto a 400/600/700-class model), MMAction2, original or ours. A head of another class count is
    left freshly initialised; every other key must fit.
    """
    arch, preset = run_architecture(cfg)
    model = UniFormerV2(arch)
    if cfg.grad_checkpoint_blocks:
        model.set_grad_checkpointing(True, int(cfg.grad_checkpoint_blocks))
    try:
        _initialise(model, cfg, preset)
    except DownloadError as e:
        # the download hint names train's own options: --init takes a local checkpoint, --clip local CLIP weights
        option = "--clip" if (cfg.init in ("auto", "clip") and preset is not None) else "--init"
        name = os.path.basename(str(e.url or ""))
        hint = (
            f"To work offline, download the file elsewhere and pass its local path ({option} /path/to/{name}), "
            f"or put it in the cache directory as {e.cache_path}."
        )
        raise DownloadError(f"{str(e).splitlines()[0]}\n{hint}", url=e.url, cache_path=e.cache_path) from None
    if cfg.frozen_backbone:
        model.freeze_backbone()
    base = preset.protocol if preset is not None else Protocol(arch.t_size, arch.input_resolution)
    protocol = base.replace(frames=cfg.frames, size=cfg.size or arch.input_resolution)
    model.pretrained_cfg = PretrainedCfg(protocol=protocol, preset=preset.name if preset is not None else None)
    return model.train()


def _initialise(model: UniFormerV2, cfg: TrainConfig, preset: Preset | None) -> None:
    """Load the weights ``cfg.init`` names into ``model`` (see :func:`build_model`)."""
    init = cfg.init
    if init == "auto":
        init = "clip" if preset is not None else cfg.model
    if init == "pretrained":
        if preset is None or not preset.url:
            raise UsageError(f"--init pretrained: {cfg.model!r} has no published checkpoint")
        init = preset.url
    if init == "clip":
        clip = cfg.clip or (preset.clip_model if preset is not None else None)
        if not clip:
            raise UsageError("--init clip needs --clip (ViT-B/16, ViT-L/14, ViT-L/14_336 or a CLIP weights file)")
        init_from_clip(model, CLIP_CHECKPOINT_URLS.get(clip, clip), progress=cfg.progress)
    elif init != "none":
        import warnings

        from ..checkpoint import load_checkpoint

        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*head keeps its fresh initialisation.*")
            load_checkpoint(model, init, strict=True, replace_head=True, progress=cfg.progress)


def run_architecture(cfg: TrainConfig) -> tuple[UniFormerV2Config, Preset | None]:
    """The run's architecture (the model's, with the overrides, head dropout and class count) and its preset."""
    overrides = dict(cfg.model_overrides)
    overrides["dropout_ratio"] = cfg.dropout_ratio
    if cfg.num_classes is not None:
        overrides["num_classes"] = int(cfg.num_classes)
    return model_config(cfg.model, **overrides)


def stratified_split(samples: Sequence[Any], fraction: float, *, seed: int = 0) -> tuple[list[Any], list[Any]]:
    """(train, val): ``fraction`` of every class's videos (at least one where a class has two or more) held out,
    chosen by a generator seeded with ``seed``, each part in the input order."""
    if not 0 < fraction < 1:
        raise UsageError(f"--val-split {fraction}: must lie between 0 and 1")
    rng = np.random.default_rng(seed)
    by_class: dict[Any, list[int]] = {}
    for i, s in enumerate(samples):
        by_class.setdefault(s.label, []).append(i)
    held: set[int] = set()
    for label in sorted(by_class, key=str):
        members = by_class[label]
        n = min(len(members) - 1, max(1, int(round(fraction * len(members))))) if len(members) > 1 else 0
        held.update(int(i) for i in rng.choice(members, size=n, replace=False))
    return ([s for i, s in enumerate(samples) if i not in held], [s for i, s in enumerate(samples) if i in held])


def folder_samples(cfg: TrainConfig) -> tuple[list[VideoSample], list[VideoSample] | None, list[str]]:
    """Training (and validation) videos from folders of class sub-folders, and the class names (the folder names).
    ``val_split``: a seeded split that keeps every class's share."""
    assert cfg.folder is not None  # callers come here only when --folder is given
    train, classes = scan_class_folders(cfg.folder)
    if cfg.val_folder and cfg.val_split:
        raise UsageError("give either --val-folder or --val-split, not both")
    val = None
    if cfg.val_folder:
        val_videos, val_classes = scan_class_folders(cfg.val_folder)
        unknown = [c for c in val_classes if c not in classes]
        if unknown:
            raise UsageError(
                f"--val-folder {cfg.val_folder}: class folders {unknown[:5]} are not among the "
                f"training classes of --folder {cfg.folder}"
            )
        index = {name: i for i, name in enumerate(classes)}
        val = []
        for s in val_videos:
            assert s.label is not None  # scan_class_folders labels every video with its folder
            val.append(VideoSample(s.path, index[val_classes[s.label]]))
    elif cfg.val_split:
        train, val = stratified_split(train, cfg.val_split, seed=cfg.seed)
    return train, val, list(classes)


def checked_samples(
    cfg: TrainConfig, samples: list[Any], num_classes: int, what: str, work_dir: Path, log: Callable[[str], None]
) -> list[Any]:
    """``samples`` (``what``: 'train' or 'val') checked as ``cfg`` says, each rank checking its share: the bad ones
    are listed in ``work_dir/bad_samples_{what}.txt``, then skipped (``skip_bad_samples``) or reported."""
    rank, world_size = D.get_rank(), D.get_world_size()
    mine = D.shard_indices(len(samples)) if world_size > 1 else None
    problems = check_samples(
        samples, num_classes, decode=cfg.check_videos, backend=cfg.backend, workers=max(2, cfg.workers), indices=mine
    )
    if world_size > 1:
        problems = sorted((p for part in D.all_gather_objects(problems) for p in part), key=lambda p: p.index)
    if not problems:
        return samples
    report = work_dir / f"bad_samples_{what}.txt"
    if rank == 0:
        atomic_write_text(report, "".join(f"{p.path}\t{p.kind}\t{p.detail}\n" for p in problems))
    source = (cfg.ann_file if what == "train" else cfg.val_ann_file) or f"{what} samples"
    if not cfg.skip_bad_samples:
        raise BadSamplesError(source, problems, report)
    bad = {p.index for p in problems}
    log(f"skipping {len(bad)} bad {what} samples of {len(samples)} (listed in {report})")
    kept = [s for i, s in enumerate(samples) if i not in bad]
    if not kept:
        raise BadSamplesError(source, problems, report)
    return kept


def export_model(
    path: Path,
    model_state: dict[str, torch.Tensor],
    module: UniFormerV2,
    model_cfg: UniFormerV2Config,
    frames: int,
    size: int,
    class_names: Sequence[str] | None,
) -> Path:
    """A trained model as one of our self-describing checkpoints: architecture, protocol and class names."""
    from ..checkpoint import save_checkpoint

    pretrained = module.pretrained_cfg.replace(
        protocol=module.pretrained_cfg.protocol.replace(frames=frames, size=size),
        class_names=tuple(class_names) if class_names else None,
    )
    return save_checkpoint(model_state, path, config=model_cfg, extra_metadata=pretrained.to_metadata())


def train_transform(cfg: TrainConfig, size: int) -> TrainTransform:
    """The recipe's training augmentation at ``size`` pixels."""
    return TrainTransform(
        short_side=cfg.short_side,
        size=size,
        randaug=cfg.randaug,
        randaug_magnitude=cfg.randaug_magnitude,
        randaug_num_layers=cfg.randaug_num_layers,
        randaug_prob=cfg.randaug_prob,
        area_range=tuple(cfg.area_range),
        aspect_ratio_range=tuple(cfg.aspect_ratio_range),
        flip_ratio=cfg.flip_ratio,
    )


def recipe_optimizer(model: torch.nn.Module, lr: float, cfg: TrainConfig) -> torch.optim.Optimizer:
    """AdamW with the recipe's parameter groups (weight decay multipliers) at learning rate ``lr``."""
    return build_optimizer(
        model,
        lr,
        weight_decay=cfg.weight_decay,
        betas=tuple(cfg.betas),
        eps=cfg.eps,
        norm_decay_mult=cfg.norm_decay_mult,
        bias_decay_mult=cfg.bias_decay_mult,
        embed_decay_mult=cfg.embed_decay_mult,
        bias_rule=cfg.bias_rule,
    )


def recipe_schedule(cfg: TrainConfig, steps_per_epoch: int, lr: float) -> RecipeSchedule:
    """The recipe's warm-up and cosine schedule over ``cfg.epochs``."""
    return RecipeSchedule(
        steps_per_epoch,
        epochs=cfg.epochs,
        warmup_epochs=cfg.warmup_epochs,
        warmup_start_factor=cfg.warmup_start_factor,
        eta_min_ratio=cfg.eta_min_ratio,
        base_lr=lr,
    )
