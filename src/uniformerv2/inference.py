"""Classifying videos: :class:`VideoClassifier`, a model with its test protocol and class names (a Hugging
Face-style pipeline), with the speed options of :mod:`uniformerv2.precision` (autocast dtype, compilation)."""
from __future__ import annotations

import os
from typing import Any, Sequence

import numpy as np
import torch

from .model import UniFormerV2
from .precision import autocast, compile_for_inference, resolve_dtype
from .protocol import Protocol

__all__ = ["VideoClassifier"]


class VideoClassifier:
    """A model with its test protocol and class names: ``predict(video) -> [(label, probability), ...]``.

    ``protocol`` and ``class_names`` default to what the model carries (``model.pretrained_cfg``); classes without
    names are called ``class_<i>``.
    """

    def __init__(self, model: UniFormerV2, protocol: Protocol | None = None,
                 class_names: Sequence[str] | None = None, *, device: str | torch.device = "cpu",
                 batch_views: int = 12, backend: str = "pyav", dtype: str | torch.dtype | None = None,
                 compile: bool = False) -> None:
        """``dtype``: autocast dtype of the forward pass (``"auto"``: bf16 where the hardware has it, ``"bf16"``,
        ``"fp16"``; default float32). ``compile``: run the network through
        :func:`~uniformerv2.precision.compile_for_inference` (the first video pays the compilation)."""
        pretrained = model.pretrained_cfg
        self.model = model.eval().to(device)
        self.protocol = protocol or pretrained.protocol
        if class_names is None:
            class_names = pretrained.class_names or [f"class_{i}" for i in range(model.num_classes)]
        self.class_names = list(class_names)
        if len(self.class_names) != model.num_classes:
            raise ValueError(f"{len(self.class_names)} class names for a {model.num_classes}-class model")
        self.device = torch.device(device)
        self.batch_views = batch_views
        self.backend = backend
        self.dtype = resolve_dtype(dtype, self.device)
        self._forward = compile_for_inference(self.model) if compile else self.model
        self._compile = compile
        self._feature_forwards: dict[str, Any] = {}  # kind -> forward, made by features()

    @classmethod
    def from_pretrained(cls, name_or_checkpoint: str | os.PathLike, *, checkpoint: str | os.PathLike | None = None,
                        labels: str | os.PathLike | None = None, views: tuple[int, int] | None = None,
                        frames: int | None = None, device: str = "cpu", progress: bool = True,
                        dtype: str | torch.dtype | None = None, compile: bool = False,
                        **overrides: Any) -> "VideoClassifier":
        """A preset name (published weights unless ``checkpoint`` is given) or one of our checkpoint files."""
        from .factory import create_model
        model = create_model(name_or_checkpoint, pretrained=checkpoint is None, checkpoint=checkpoint,
                             labels=labels, progress=progress, **overrides)
        clips, crops = views if views else (None, None)
        protocol = model.pretrained_cfg.protocol.replace(frames=frames, clips=clips, crops=crops)
        return cls(model, protocol, device=device, dtype=dtype, compile=compile)

    def views(self, video: str | os.PathLike | np.ndarray | torch.Tensor) -> torch.Tensor:
        """uint8 test views [V, 3, T, S, S] of a file, or of decoded frames uint8 [F, H, W, 3]."""
        from .data import read_test_views, sample_test_indices, views_from_frames
        if isinstance(video, (str, os.PathLike)):
            return read_test_views(video, self.protocol, backend=self.backend)
        frames = video.detach().cpu().numpy() if isinstance(video, torch.Tensor) else np.asarray(video)
        if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
            raise ValueError(f"expected decoded frames as uint8 [frames, height, width, 3], got "
                             f"{frames.dtype} {list(frames.shape)}")
        inds = sample_test_indices(len(frames), self.protocol)
        return views_from_frames(frames[inds], self.protocol)

    @torch.inference_mode()
    def scores_of_views(self, views: torch.Tensor) -> torch.Tensor:
        """Softmax probabilities averaged over views (MMAction2's ``average_clips='prob'``): [num_classes]."""
        from .data import normalize
        probs = []
        for chunk in views.split(self.batch_views):
            with autocast(self.device, self.dtype):
                logits = self._forward(normalize(chunk).to(self.device))
            probs.append(logits.float().softmax(-1).cpu())
        return torch.cat(probs).mean(0)

    def scores(self, video: str | os.PathLike | np.ndarray | torch.Tensor) -> torch.Tensor:
        return self.scores_of_views(self.views(video))

    @torch.inference_mode()
    def features(self, video: str | os.PathLike | np.ndarray | torch.Tensor, kind: str = "pooled", *,
                 average: bool = True) -> torch.Tensor:
        """Features of a video file or decoded frames over the protocol's test views, float32 on the CPU.

        ``kind``: see :meth:`UniFormerV2.forward_features` (``pooled``, the feature the head sees, by default;
        ``video-token``, ``frame-cls``, ``patch-mean``, ``logits``, ``probs``). ``average``: the mean over the
        clips x crops views (``[C]`` or ``[T, C]``; for ``pooled`` what MMAction2's
        ``tools/misc/clip_feature_extraction.py`` returns), else one per view (``[views, ...]``).
        """
        from .data import normalize
        from .features import feature_forward
        if kind not in self._feature_forwards:
            self._feature_forwards[kind] = feature_forward(self.model, kind, compile=self._compile)
        forward = self._feature_forwards[kind]
        out = []
        for chunk in self.views(video).split(self.batch_views):
            with autocast(self.device, self.dtype):
                out.append(forward(normalize(chunk).to(self.device)).float().cpu())
        feats = torch.cat(out)
        return feats.mean(0) if average else feats

    def explain(self, video: str | os.PathLike, *, target: int | str | None = None, method: str = "both",
                block: int = -1) -> Any:
        """Where and when the model looks for ``target`` (a class name or index; default: the predicted class) on
        the centre test view: an :class:`~uniformerv2.explain.Explanation` with Grad-CAM and/or attention maps."""
        from .explain import explain_video
        return explain_video(self.model, video, protocol=self.protocol, target=target, class_names=self.class_names,
                             method=method, block=block, device=self.device, dtype=self.dtype, backend=self.backend)

    def stream(self, source: str, *, window: float = 2.0, every: float = 0.5, top_k: int = 5,
               realtime: bool = False, duration: float | None = None, **kwargs: Any) -> Any:
        """Decisions on a camera, stream or file (``realtime``: played at its own speed): every ``every`` seconds
        the newest ``window`` seconds scored (see :mod:`uniformerv2.live`); a generator of
        :class:`~uniformerv2.live.Decision`."""
        from .live import stream
        return stream(self, source, window=window, every=every, top_k=top_k, realtime=realtime, duration=duration,
                      **kwargs)

    def top_k(self, scores: torch.Tensor, top_k: int = 5) -> list[tuple[str, float]]:
        if top_k < 1:
            raise ValueError(f"top_k must be at least 1, got {top_k}")
        values, indices = scores.topk(min(top_k, scores.numel()))
        return [(self.class_names[i], float(v)) for v, i in zip(values.tolist(), indices.tolist())]

    def predict(self, video: str | os.PathLike | np.ndarray | torch.Tensor, top_k: int = 5) -> list[tuple[str, float]]:
        """``[(label, probability), ...]``, most probable first, for a video file or decoded frames."""
        return self.top_k(self.scores(video), top_k)
