"""Fine-tuning: the :class:`Trainer`, readable top to bottom -- ``setup``, ``fit`` (epochs of ``train_epoch``,
``validate``, ``save``), and exact resume. The settings and their recipe defaults are :class:`TrainConfig`; the
model and the videos a run is built from are :mod:`.build`'s; what one optimiser step does is :mod:`.step`'s.

Exact resume. The data order is a function of (seed, epoch) (:class:`~uniformerv2.engine.sampler.ResumableSampler`),
every training item's randomness a function of (seed, epoch, index)
(:class:`uniformerv2.data.augment.TrainClipsDataset`), and the DataLoader has its own generator so that it never
draws from the global RNG. A checkpoint holds the model, optimiser, schedule and grad scaler states, every RNG state
(of every rank) and the position inside the epoch; resuming from it replays exactly what the uninterrupted run
would have done.

Distributed: launched with ``torchrun`` (any of its flags, multi-node included), every rank takes a
DistributedSampler-style share of each global batch; the model is wrapped in DDP (or sharded with FSDP2,
``fsdp=True``) by :class:`~uniformerv2.engine.parallel.Parallel`; validation shards the videos across ranks. Two
processes with half the batch each follow the same trajectory as one process with the whole batch (up to float
summation order), given no dropout.
"""

from __future__ import annotations

import json
import math
import random
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..atomic import atomic_write_text
from ..check import BadSamplesError, check_samples
from ..data import read_annotation_list, read_label_map
from ..data.augment import TrainClipsDataset
from ..errors import UsageError
from ..model import UniFormerV2
from ..plots import write_curves
from ..precision import autocast_dtype, resolve_dtype
from ..protocol import Protocol
from . import distributed as D
from .build import (
    build_model,
    checked_samples,
    export_model,
    folder_samples,
    recipe_optimizer,
    recipe_schedule,
    run_architecture,
    train_transform,
)
from .config import TrainConfig, TrainResult
from .evaluate import evaluate
from .optim import scaled_lr
from .parallel import Parallel
from .reports import JsonLog
from .sampler import ResumableSampler
from .state import (
    CheckpointManager,
    TrainingStateError,
    capture_rng_state,
    find_resume_checkpoint,
    load_training_state,
    restore_rng_state,
)
from .step import StepSums, TrainStep, collate

__all__ = [
    "TrainConfig",
    "TrainResult",
    "Trainer",
    "train",
    "build_model",
    "ResumableSampler",
    "BadSamplesError",
    "check_samples",
]


class Trainer:
    """One training run: ``Trainer(cfg).fit()``; see the module docstring.

    ``train_samples``/``val_samples`` (``VideoSample`` lists) replace the annotation files; ``model`` replaces
    :func:`build_model`; ``callbacks`` are called as ``cb(trainer, event, info)`` with event 'step' (after every
    optimiser step), 'epoch' (after validation) and 'checkpoint' (after a checkpoint is written).
    """

    def __init__(
        self,
        cfg: TrainConfig,
        *,
        train_samples: Sequence[Any] | None = None,
        val_samples: Sequence[Any] | None = None,
        model: UniFormerV2 | None = None,
        callbacks: Sequence[Callable[..., None]] = (),
        class_names: Sequence[str] | None = None,
    ) -> None:
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
        if given is not None:
            return list(given)
        if ann is None:
            return None
        return read_annotation_list(ann, root)

    def _folder_samples(self) -> tuple[list[Any], list[Any] | None]:
        """Training (and validation) videos from class folders, whose names become the class names stored with
        the model (see :func:`~uniformerv2.engine.build.folder_samples`)."""
        cfg = self.cfg
        train, val, classes = folder_samples(cfg)
        if self.class_names is None and not cfg.labels:
            self.class_names = classes
        if cfg.num_classes is None:
            self.cfg = cfg.replace(num_classes=len(classes))
        return train, val

    def setup(self) -> None:
        cfg = self.cfg
        if cfg.threads:
            torch.set_num_threads(int(cfg.threads))
        autocast_dtype(cfg.dtype)  # a bad name is reported before anything is loaded
        self.device = D.init_distributed(cfg.device)
        self.amp_dtype = resolve_dtype(cfg.dtype, self.device)
        self.rank, self.world_size = D.get_rank(), D.get_world_size()
        self.work_dir = Path(cfg.work_dir)
        self.work_dir.mkdir(parents=True, exist_ok=True)
        # seeds: the model's initialisation is the same on every rank; dropout differs per rank
        torch.manual_seed(cfg.seed)
        np.random.seed(cfg.seed)
        random.seed(cfg.seed)

        train_samples: list[Any] | None
        if cfg.folder:
            train_samples, val_samples = self._folder_samples()
            cfg = self.cfg  # the folders gave the class count
        else:
            train_samples = self._samples(cfg.ann_file, cfg.data_root, self._train_samples, "train")
            val_samples = self._samples(
                cfg.val_ann_file,
                cfg.val_data_root if cfg.val_data_root is not None else cfg.data_root,
                self._val_samples,
                "val",
            )
        if not train_samples:
            raise UsageError("no training data: pass --folder DIR, or --ann-file FILE (and --data-root)")
        num_classes = (self._model.cfg if self._model is not None else run_architecture(cfg)[0]).num_classes
        # bad input is reported before anything expensive happens
        self.train_samples = checked_samples(cfg, train_samples, num_classes, "train", self.work_dir, self._log)
        self.val_samples = (
            checked_samples(cfg, val_samples, num_classes, "val", self.work_dir, self._log) if val_samples else None
        )

        model = self._model if self._model is not None else build_model(cfg)
        if self.class_names is None and cfg.labels:
            self.class_names = read_label_map(cfg.labels)
        if self.class_names is not None and len(self.class_names) != num_classes:
            raise UsageError(f"--labels {cfg.labels}: {len(self.class_names)} class names for {num_classes} classes")
        self.model_cfg = model.cfg
        self.frames = cfg.frames or model.cfg.t_size
        self.size = cfg.size or model.cfg.input_resolution
        model.to(self.device)
        self.module = model
        torch.manual_seed(cfg.seed + self.rank)  # dropout / drop-path streams per rank

        tf = train_transform(cfg, self.size)
        self.dataset = TrainClipsDataset(
            self.train_samples, frames=self.frames, seed=cfg.seed, transform=tf, backend=cfg.backend
        )
        self.sampler = ResumableSampler(len(self.dataset), rank=self.rank, world_size=self.world_size, seed=cfg.seed)
        self.batches_per_epoch = math.ceil(self.sampler.num_samples / cfg.batch_size)
        self.steps_per_epoch = math.ceil(self.batches_per_epoch / cfg.accum_steps)
        self.total_steps = int(cfg.epochs * self.steps_per_epoch)
        self.num_epochs = math.ceil(cfg.epochs)

        self.parallel = Parallel(self.world_size, fsdp=cfg.fsdp, find_unused_parameters=cfg.find_unused_parameters)
        self.model = self.parallel.wrap(model, self.device)

        total_batch = cfg.batch_size * self.world_size * cfg.accum_steps
        self.lr = cfg.lr if cfg.lr is not None else scaled_lr(cfg.base_lr, total_batch, cfg.base_batch_size)
        self.optimizer = recipe_optimizer(self.model, self.lr, cfg)
        self.schedule = recipe_schedule(cfg, self.steps_per_epoch, self.lr)
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.amp_dtype == torch.float16)
        self.train_step = TrainStep(
            self.model,
            self.optimizer,
            self.scaler,
            self.parallel,
            device=self.device,
            amp_dtype=self.amp_dtype,
            clip_grad=cfg.clip_grad,
        )
        self.ckpt = CheckpointManager(self.work_dir, keep_last=cfg.keep_last)
        self.jsonl = JsonLog(self.work_dir / "log.jsonl", self.rank == 0)
        self.epoch, self.batches_done, self.global_step = 0, 0, 0
        self.best_top1: float | None = None
        if self.rank == 0:
            meta = {
                "config": cfg.to_dict(),
                "model_config": model.cfg.to_dict(),
                "world_size": self.world_size,
                "lr": self.lr,
                "total_batch": total_batch,
                "steps_per_epoch": self.steps_per_epoch,
                "train_videos": len(self.train_samples),
                "val_videos": len(self.val_samples) if self.val_samples else 0,
            }
            atomic_write_text(self.work_dir / "train_config.json", json.dumps(meta, indent=1) + "\n")

    # ------------------------------------------------------------------------------------------- state
    def _full_model_state(self) -> dict[str, torch.Tensor]:
        return self.parallel.full_state(self.model, self.module, None)[0]

    def state_dict(self) -> dict[str, Any]:
        rngs = D.all_gather_objects(capture_rng_state())
        model_sd, optim_sd = self.parallel.full_state(self.model, self.module, self.optimizer)
        return {
            "format": "uniformerv2-train",
            "version": 1,
            "model": model_sd,
            "model_config": json.dumps(self.model_cfg.to_dict()),
            "optimizer": optim_sd,
            "schedule": self.schedule.state_dict(),
            "scaler": self.scaler.state_dict(),
            "rng": rngs,
            "epoch": self.epoch,
            "batches_done": self.batches_done,
            "global_step": self.global_step,
            "best_top1": self.best_top1,
            "history": json.dumps(self.history),
            "world_size": self.world_size,
            "config": json.dumps(self.cfg.to_dict()),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if int(state.get("world_size", 1)) != self.world_size:
            raise TrainingStateError(
                f"the checkpoint was written by {state.get('world_size')} processes and this "
                f"run has {self.world_size}: exact resume needs the same world size"
            )
        self.parallel.load_state(self.model, self.module, self.optimizer, state["model"], state["optimizer"])
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
        return export_model(path, model_state, self.module, self.model_cfg, self.frames, self.size, self.class_names)

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
        self._log(
            f"resumed from {path}: epoch {self.epoch}, step {self.global_step} "
            f"({self.batches_done} of {self.batches_per_epoch} batches of the epoch done)"
        )

    # -------------------------------------------------------------------------------------------- loop
    def _loader(self, epoch: int, start_batch: int) -> torch.utils.data.DataLoader:
        cfg = self.cfg
        self.sampler.set_epoch(epoch, start_batch * cfg.batch_size)
        gen = torch.Generator()
        gen.manual_seed(cfg.seed)  # the loader never draws from the global RNG
        return torch.utils.data.DataLoader(
            self.dataset,
            batch_size=cfg.batch_size,
            sampler=self.sampler,
            num_workers=cfg.workers,
            collate_fn=collate,
            pin_memory=self.device.type == "cuda",
            drop_last=False,
            generator=gen,
            persistent_workers=False,
            prefetch_factor=2 if cfg.workers > 0 else None,
        )

    def train_epoch(self, epoch: int) -> None:
        from tqdm.auto import tqdm

        cfg = self.cfg
        self.model.train()
        start_batch = self.batches_done
        loader = self._loader(epoch, start_batch)
        steps_this_epoch = min(self.steps_per_epoch, self.total_steps - epoch * self.steps_per_epoch)
        bar = tqdm(
            total=steps_this_epoch,
            initial=start_batch // cfg.accum_steps,
            unit="step",
            dynamic_ncols=True,
            desc=f"epoch {epoch + 1}/{self.num_epochs}",
            disable=not cfg.progress or self.rank != 0,
            file=sys.stderr,
        )
        sums = StepSums()
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
            loss, logits = self.train_step.backward(x, y, n_micro=n_micro, last_micro=last_micro)
            loss_value = float(loss)
            sums.add(loss_value, logits, y)
            batch_in_step += 1
            micro += 1
            if not last_micro:
                continue
            grad_norm = self.train_step.step()
            batch_in_step = 0
            self.global_step += 1
            self.batches_done = batch_index + 1
            lr = self.optimizer.param_groups[0]["lr"]
            bar.update(1)
            bar.set_postfix(loss=f"{loss_value:.4f}", lr=f"{lr:.2e}", refresh=False)
            if self.global_step % cfg.log_interval == 0 or self.batches_done == self.batches_per_epoch:
                mean_loss, acc = sums.reduce(self.device)
                rec = {
                    "type": "train",
                    "epoch": epoch + 1,
                    "global_step": self.global_step,
                    "epoch_float": epoch + (step_in_epoch + 1) / self.steps_per_epoch,
                    "lr": lr,
                    "loss": mean_loss,
                    "acc": acc,
                    "grad_norm": grad_norm,
                    "time_per_step": (time.perf_counter() - t0) / max(1, micro) * cfg.accum_steps,
                }
                self.history.append(rec)
                self.jsonl.write(rec)
                sums = StepSums()
                t0, micro = time.perf_counter(), 0
            for cb in self.callbacks:
                cb(self, "step", {"epoch": epoch, "global_step": self.global_step, "loss": loss_value})
            if (
                cfg.checkpoint_interval_steps
                and self.global_step % cfg.checkpoint_interval_steps == 0
                and self.batches_done < self.batches_per_epoch
            ):
                self.save()
            if cfg.max_steps is not None and self.global_step >= cfg.max_steps:
                break
        bar.close()

    def validate(self, epoch: int) -> dict[str, float] | None:
        if not self.val_samples:
            return None
        cfg = self.cfg
        net, split = self.parallel.evaluation(self.model, self.module)
        protocol = Protocol(self.frames, self.size, cfg.val_clips, cfg.val_crops)
        result = evaluate(
            net,
            self.val_samples,
            protocol,
            batch_views=cfg.val_batch_views,
            workers=cfg.workers,
            device=self.device,
            dtype=self.amp_dtype,
            progress=False,
            backend=cfg.backend,
            distributed=split,
        )
        self.model.train()
        m = dict(result.metrics)
        if result.failures:
            m["failures"] = len(result.failures)
        label_ids: list[int] = []
        for lab in result.labels:
            assert lab is not None  # checked_samples rejected unlabelled validation videos
            label_ids.append(int(lab))
        labels = torch.tensor(label_ids, dtype=torch.long)
        if len(labels):
            m["loss"] = float(F.nll_loss(result.scores.clamp_min(1e-12).log(), labels))
        return m

    def fit(self) -> TrainResult:
        self.setup()
        self._resume()
        cfg = self.cfg
        if self.rank == 0:
            self._log(
                f"training {len(self.train_samples)} videos on {self.world_size} process(es) ({self.device}): "
                f"{self.steps_per_epoch} steps/epoch x {cfg.epochs} epochs, lr {self.lr:.3g}, "
                f"total batch {cfg.batch_size * self.world_size * cfg.accum_steps}; work dir {self.work_dir}"
            )
        stop = False
        while self.epoch < self.num_epochs and not stop:
            epoch = self.epoch
            if self.batches_done < self.batches_per_epoch and self.global_step < self.total_steps:
                self.train_epoch(epoch)
            stop = cfg.max_steps is not None and self.global_step >= cfg.max_steps
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
                self._log(f"epoch {epoch + 1}: val top-1 {metrics['top1']:.4f}" + (" (best)" if is_best else ""))
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
        return TrainResult(
            work_dir=self.work_dir,
            model_path=model_path,
            best_path=best if best.is_file() else None,
            best_top1=self.best_top1,
            history=self.history,
            steps=self.global_step,
            epochs=self.epoch,
            model=self.module,
        )


def train(cfg: TrainConfig | None = None, **kwargs: Any) -> TrainResult:
    """``train(TrainConfig(...))`` or ``train(model=..., ann_file=..., work_dir=...)``; returns a TrainResult."""
    trainer_kw: dict[str, Any] = {
        k: kwargs.pop(k) for k in ("train_samples", "val_samples", "callbacks") if k in kwargs
    }
    if isinstance(kwargs.get("class_names"), (list, tuple)):  # names themselves, not a label-map file
        trainer_kw["class_names"] = kwargs.pop("class_names")
    if "model" in kwargs and isinstance(kwargs["model"], nn.Module):
        trainer_kw["model"] = kwargs.pop("model")
    cfg = (cfg or TrainConfig()).replace(**kwargs) if kwargs else (cfg or TrainConfig())
    return Trainer(cfg, **trainer_kw).fit()
