"""Classifying videos: ``VideoClassifier`` (a Hugging Face-style pipeline), the test protocol a model comes with,
the inference speed options (autocast dtype, ``compile_for_inference``) and the ``predict`` command."""
from __future__ import annotations

import argparse
import contextlib
import glob
import json
import os
import sys
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable, ContextManager, Iterable, Sequence

import numpy as np
import torch

from .model import UniFormerV2

__all__ = ["Protocol", "VideoClassifier", "checkpoint_metadata", "resolve_protocol", "known_class_names",
           "resolve_class_names", "expand_inputs", "add_predict_command", "autocast_dtype", "inference_autocast",
           "compile_for_inference"]

AUTOCAST_DTYPES: dict[str, torch.dtype | None] = {
    "float32": None, "fp32": None, "bfloat16": torch.bfloat16, "bf16": torch.bfloat16,
    "float16": torch.float16, "fp16": torch.float16}


def autocast_dtype(dtype: str | torch.dtype | None) -> torch.dtype | None:
    """The autocast dtype for ``dtype`` (a name such as ``"bf16"``, or a torch dtype); None means plain float32."""
    if isinstance(dtype, str):
        if dtype not in AUTOCAST_DTYPES:
            raise ValueError(f"unknown dtype {dtype!r}; choose one of {', '.join(AUTOCAST_DTYPES)}")
        dtype = AUTOCAST_DTYPES[dtype]
    if dtype is not None and dtype not in (torch.float32, torch.bfloat16, torch.float16):
        raise ValueError(f"unsupported dtype {dtype}; use float32, bfloat16 or float16")
    return None if dtype == torch.float32 else dtype


def inference_autocast(device: str | torch.device, dtype: str | torch.dtype | None) -> ContextManager[Any]:
    """``torch.autocast`` for ``dtype`` on ``device``'s type, or a no-op for float32.

    Our network keeps the residual stream, LayerNorms and softmax inputs in float32 under autocast (see
    ``model.py``), so only the matrix products and convolutions run in ``dtype``.
    """
    dtype = autocast_dtype(dtype)
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(torch.device(device).type, dtype=dtype)


def _cpp_compiler_available() -> bool:
    """Whether inductor will find the C++ compiler it uses for CPU kernels ($CXX, else g++ / c++ / clang++)."""
    import shutil
    cxx = os.environ.get("CXX")
    candidates = [cxx] if cxx else ["g++", "c++", "clang++"]
    return any(shutil.which(c) for c in candidates)


def compile_for_inference(model: torch.nn.Module) -> Callable[..., torch.Tensor]:
    """``model`` under ``torch.compile`` for inference, compiled with inductor's freezing: the weights become
    constants, so their autocast casts are folded away and the linear layers run on prepacked oneDNN (CPU) weights.

    Returns a callable ``f(views) -> logits``. The first call for an input shape compiles (about 15-30 s for B/16 on
    2 CPU cores); later calls reuse it. Call it with autograd off (``torch.no_grad``/``torch.inference_mode``):
    freezing only applies there. Outputs equal the eager model's within float rounding; ``model`` is not copied
    and stays usable eagerly.
    """
    import torch._inductor.config as inductor_config

    on_cpu = all(p.device.type == "cpu" for p in model.parameters())
    if on_cpu and not _cpp_compiler_available():
        raise RuntimeError("compiling for CPU needs a C++ compiler (inductor builds its kernels with one), and none "
                           "was found: set CXX or put g++/clang++ on PATH, or run without --compile")
    compiled = torch.compile(model.eval())

    def forward(*args: Any, **kwargs: Any) -> torch.Tensor:
        # inductor reads ``freezing`` when it compiles, i.e. inside the first call for each shape; torch.compile's
        # ``options={"freezing": True}`` does not reach that check in torch 2.14 (measured: nothing prepacked)
        with inductor_config.patch(freezing=True):
            return compiled(*args, **kwargs)

    return forward


@dataclass(frozen=True)
class Protocol:
    """The test-time views of a model: frames per clip, crop size, clips x crops, temporal sampling."""

    frames: int
    size: int
    clips: int = 4
    crops: int = 3
    sampling: str = "mmaction2"

    @property
    def views(self) -> int:
        return self.clips * self.crops

    def describe(self) -> str:
        return f"{self.clips} clips x {self.crops} crops of {self.frames} frames at {self.size}px, {self.sampling} sampling"


def checkpoint_metadata(path: str | os.PathLike | None) -> dict[str, str]:
    """Metadata stored in one of our safetensors checkpoints (empty for other files)."""
    if not path or not os.path.isfile(path):
        return {}
    try:
        from safetensors import safe_open
        with safe_open(str(path), framework="pt") as f:
            return dict(f.metadata() or {})
    except Exception:  # noqa: BLE001 - not a safetensors file: no metadata
        return {}


def resolve_protocol(preset: Any, model: UniFormerV2, meta: dict[str, str] | None = None, *,
                     frames: int | None = None, size: int | None = None, views: tuple[int, int] | None = None,
                     sampling: str | None = None) -> Protocol:
    """The preset's protocol; else what a checkpoint's metadata records; else the model's frames and size, 4x3."""
    meta = meta or {}
    if preset is not None:  # crops are the model's input size, which architecture overrides may have changed
        proto = Protocol(preset.num_frames, int(model.cfg.input_resolution), preset.num_clips, preset.num_crops,
                         preset.sampling)
    else:
        cfg = model.cfg
        fields = {"frames": int(cfg.t_size), "size": int(cfg.input_resolution)}
        for key, meta_key in (("frames", "num_frames"), ("size", "resolution"), ("clips", "num_clips"),
                              ("crops", "num_crops")):
            if str(meta.get(meta_key, "")).isdigit():
                fields[key] = int(meta[meta_key])
        if meta.get("sampling") in ("mmaction2", "original"):
            fields["sampling"] = meta["sampling"]
        proto = Protocol(**fields)
    changes: dict[str, Any] = {}
    if frames:
        changes["frames"] = frames
    if size:
        changes["size"] = size
    if views:
        changes["clips"], changes["crops"] = views
    if sampling:
        changes["sampling"] = sampling
    return replace(proto, **changes)


def known_class_names(labels: str | os.PathLike | None, preset: Any,
                      meta: dict[str, str] | None) -> tuple[list[str] | None, str | None]:
    """Class names from ``labels`` (a file or shipped map), the preset's label map, or a checkpoint's metadata,
    with where they came from; ``(None, None)`` where none is known."""
    from .data import read_label_map
    meta = meta or {}
    if labels:
        return list(read_label_map(labels)), str(labels)
    if preset is not None and preset.label_map:
        return list(read_label_map(preset.label_map)), f"label map {preset.label_map!r}"
    if meta.get("class_names"):
        try:
            loaded = json.loads(meta["class_names"])
        except json.JSONDecodeError:
            loaded = None
        if isinstance(loaded, list):
            return [str(n) for n in loaded], "the checkpoint's class names"
    if meta.get("label_map"):
        return list(read_label_map(meta["label_map"])), f"label map {meta['label_map']!r}"
    return None, None


def resolve_class_names(labels: str | os.PathLike | None, preset: Any, meta: dict[str, str] | None,
                        num_classes: int) -> list[str]:
    """:func:`known_class_names`, or ``class_<i>``; a ValueError when a label map has the wrong length."""
    names, source = known_class_names(labels, preset, meta)
    if names is None:
        return [f"class_{i}" for i in range(num_classes)]
    if len(names) != num_classes:
        raise ValueError(f"{source} has {len(names)} classes but the model has {num_classes}")
    return names


class VideoClassifier:
    """A model with its test protocol and class names: ``predict(video) -> [(label, probability), ...]``."""

    def __init__(self, model: UniFormerV2, protocol: Protocol, class_names: Sequence[str], *,
                 device: str | torch.device = "cpu", batch_views: int = 12, backend: str = "pyav",
                 dtype: str | torch.dtype | None = None, compile: bool = False) -> None:
        """``dtype``: autocast dtype of the forward pass (``"bf16"``, ``"fp16"``; default float32). ``compile``:
        run the network through :func:`compile_for_inference` (the first video pays the compilation)."""
        self.model = model.eval().to(device)
        self.protocol = protocol
        self.class_names = list(class_names)
        self.device = torch.device(device)
        self.batch_views = batch_views
        self.backend = backend
        self.dtype = autocast_dtype(dtype)
        self._forward = compile_for_inference(self.model) if compile else self.model

    @classmethod
    def from_pretrained(cls, name_or_checkpoint: str | os.PathLike, *, checkpoint: str | os.PathLike | None = None,
                        labels: str | os.PathLike | None = None, views: tuple[int, int] | None = None,
                        frames: int | None = None, device: str = "cpu", progress: bool = True,
                        dtype: str | torch.dtype | None = None, compile: bool = False,
                        **overrides: Any) -> "VideoClassifier":
        """A preset name (published weights unless ``checkpoint`` is given) or one of our checkpoint files."""
        from .factory import create_model
        from .zoo import UnknownModelError, get_preset
        name: str | None = str(name_or_checkpoint)
        try:
            preset = get_preset(name)
        except UnknownModelError:
            if not os.path.exists(str(name_or_checkpoint)):
                raise
            preset, name, checkpoint = None, None, name_or_checkpoint
        model = create_model(name, pretrained=checkpoint is None, checkpoint=checkpoint, progress=progress,
                             **overrides)
        meta = checkpoint_metadata(checkpoint)
        protocol = resolve_protocol(preset, model, meta, frames=frames, views=views)
        names = resolve_class_names(labels, preset, meta, model.num_classes)
        return cls(model, protocol, names, device=device, dtype=dtype, compile=compile)

    def views(self, video: str | os.PathLike | np.ndarray | torch.Tensor) -> torch.Tensor:
        """uint8 test views [V, 3, T, S, S] of a file, or of decoded frames uint8 [F, H, W, 3]."""
        from .data import read_test_views, sample_test_indices, views_from_frames
        p = self.protocol
        if isinstance(video, (str, os.PathLike)):
            return read_test_views(video, p.frames, p.clips, p.crops, p.size, backend=self.backend,
                                   sampling=p.sampling)
        frames = video.detach().cpu().numpy() if isinstance(video, torch.Tensor) else np.asarray(video)
        if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
            raise ValueError(f"expected decoded frames as uint8 [frames, height, width, 3], got "
                             f"{frames.dtype} {list(frames.shape)}")
        inds = sample_test_indices(len(frames), p.frames, p.clips, p.sampling)
        return views_from_frames(frames[inds], p.frames, p.clips, p.crops, p.size, sampling=p.sampling)

    @torch.inference_mode()
    def scores_of_views(self, views: torch.Tensor) -> torch.Tensor:
        """Softmax probabilities averaged over views (MMAction2's ``average_clips='prob'``): [num_classes]."""
        from .data import normalize
        probs = []
        autocast = inference_autocast(self.device, self.dtype)
        for chunk in views.split(self.batch_views):
            with autocast:
                logits = self._forward(normalize(chunk).to(self.device))
            probs.append(logits.float().softmax(-1).cpu())
        return torch.cat(probs).mean(0)

    def scores(self, video: str | os.PathLike | np.ndarray | torch.Tensor) -> torch.Tensor:
        return self.scores_of_views(self.views(video))

    def top_k(self, scores: torch.Tensor, top_k: int = 5) -> list[tuple[str, float]]:
        values, indices = scores.topk(min(top_k, scores.numel()))
        return [(self.class_names[i], float(v)) for v, i in zip(values.tolist(), indices.tolist())]

    def predict(self, video: str | os.PathLike | np.ndarray | torch.Tensor, top_k: int = 5) -> list[tuple[str, float]]:
        """``[(label, probability), ...]``, most probable first, for a video file or decoded frames."""
        return self.top_k(self.scores(video), top_k)


# --------------------------------------------------------------------------------------------------- predict

def expand_inputs(items: Iterable[str]) -> list[str]:
    """Files as given; directories and globs expanded to the video files they hold (sorted)."""
    from .data import VIDEO_EXTENSIONS
    out: list[str] = []
    for item in items:
        if os.path.isdir(item):
            found = sorted(str(p) for p in Path(item).rglob("*") if p.suffix.lower() in VIDEO_EXTENSIONS)
            out.extend(found or [item])  # an empty folder is reported as a bad input
        elif any(ch in item for ch in "*?[") and not os.path.exists(item):
            matches = sorted(glob.glob(item, recursive=True))
            out.extend(matches or [item])  # a glob that matches nothing is reported as a bad input
        else:
            out.append(item)
    return out


def _table(path: str, ranked: list[tuple[str, float]]) -> str:
    width = max(len(label) for label, _ in ranked)
    lines = [path]
    lines += [f"  {rank:>2}  {label.ljust(width)}  {prob:7.2%}" for rank, (label, prob) in enumerate(ranked, 1)]
    return "\n".join(lines)


def classifier_from_args(args: argparse.Namespace, views: tuple[int, int] | None) -> VideoClassifier:
    """The classifier named by ``--model``/``--checkpoint``, ``--labels``, ``--frames``, ``--device``, ``--set``."""
    from .cli import parse_overrides
    source = args.model or args.checkpoint
    if source is None:
        raise ValueError("name a model (--model PRESET) or a checkpoint (--checkpoint FILE)")
    return VideoClassifier.from_pretrained(source, checkpoint=args.checkpoint if args.model else None,
                                           labels=args.labels, views=views, frames=args.frames,
                                           device=args.device, dtype=getattr(args, "dtype", None),
                                           compile=getattr(args, "compile", False), **parse_overrides(args.set))


def _cmd_predict(args: argparse.Namespace) -> int:
    from .data import VideoDecodeError
    clf = classifier_from_args(args, args.views)
    source = args.model or args.checkpoint
    results, failed = [], 0
    for path in expand_inputs(args.videos):
        try:
            if os.path.isdir(path):
                raise VideoDecodeError(path, "a folder with no video files")
            ranked = clf.predict(path, top_k=args.top_k)
        except (VideoDecodeError, ValueError, OSError) as e:
            failed += 1
            reason = str(e)
            print(reason if reason.startswith(path) else f"{path}: {reason}", file=sys.stderr)
            if args.debug:
                raise
            continue
        results.append({"video": path, "predictions": [{"rank": i + 1, "label": label, "probability": prob}
                                                       for i, (label, prob) in enumerate(ranked)]})
        if not args.json:
            print(_table(path, ranked), flush=True)
    if args.json:
        print(json.dumps({"model": source, "protocol": clf.protocol.describe(), "results": results,
                          "failed": failed}, indent=1))
    return 1 if failed else 0


def add_speed_arguments(p: argparse.ArgumentParser) -> None:
    """``--dtype`` and ``--compile``, shared by ``predict``, ``timeline`` and ``test``."""
    p.add_argument("--dtype", choices=["float32", "bfloat16", "float16"], default="float32",
                   help="autocast dtype for the forward pass (default float32; bfloat16 is about 1.8x faster on "
                        "CPUs with AVX512-BF16 or AMX)")
    p.add_argument("--compile", action="store_true",
                   help="run the network under torch.compile with weight freezing (needs a C++ compiler on CPU; "
                        "the first forward compiles, for about 15-30 s)")


def add_predict_command(sub: Any) -> None:
    """Register ``uniformerv2 predict``."""
    from .engine.evaluate import parse_views
    p = sub.add_parser("predict", help="classify video files with a preset's test protocol")
    p.add_argument("videos", nargs="+", metavar="VIDEO", help="video files, folders or globs")
    p.add_argument("--model", help="preset name (published weights are downloaded unless --checkpoint is given)")
    p.add_argument("--checkpoint", help="weights: any supported format; ours (.safetensors) needs no --model")
    p.add_argument("--top-k", type=int, default=5)
    p.add_argument("--views", type=parse_views, help="CLIPSxCROPS, e.g. 4x3 (default: the preset's protocol)")
    p.add_argument("--frames", type=int, help="frames per clip (default: the preset's)")
    p.add_argument("--labels", help="class names: a text file (one per line) or k400, k600, k700, k710, mitv1")
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, ...")
    add_speed_arguments(p)
    p.add_argument("--json", action="store_true", help="machine-readable output on stdout")
    p.add_argument("--set", nargs="*", metavar="KEY=VALUE", help="architecture overrides (MMAction2 names)")
    p.set_defaults(func=_cmd_predict)
