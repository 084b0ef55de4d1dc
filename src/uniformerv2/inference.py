"""Classifying videos: :class:`VideoClassifier`, a model with its test protocol and class names (a Hugging
Face-style pipeline), with the speed options of :mod:`uniformerv2.precision` (autocast dtype, compilation); and
the one scoring rule every caller shares (:func:`probabilities`, :func:`top_classes`): the command line, the
timeline, live recognition and the HTTP service."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from .model import UniFormerV2
from .precision import autocast, check_device, compile_for_inference, resolve_dtype
from .protocol import Protocol
from .scoring import probabilities, top_classes

if TYPE_CHECKING:
    from .data import VideoReader
    from .duration import Duration

__all__ = ["VideoClassifier", "probabilities", "top_classes"]


class VideoClassifier:
    """A model with its test protocol and class names: ``predict(video) -> [(label, probability), ...]``.

    ``protocol`` and ``class_names`` default to what the model carries (``model.pretrained_cfg``); classes without
    names are called ``class_<i>``.
    """

    def __init__(
        self,
        model: UniFormerV2,
        protocol: Protocol | None = None,
        class_names: Sequence[str] | None = None,
        *,
        device: str | torch.device = "cpu",
        batch_views: int = 12,
        backend: str = "pyav",
        dtype: str | torch.dtype | None = None,
        compile: bool = False,
    ) -> None:
        """``dtype``: autocast dtype of the forward pass (``"auto"``: bf16 where the hardware has it, ``"bf16"``,
        ``"fp16"``; default float32). ``compile``: run the network through
        :func:`~uniformerv2.precision.compile_for_inference` (the first video pays the compilation)."""
        pretrained = model.pretrained_cfg
        self.device = check_device(device)  # before the model moves: a missing GPU is the caller's mistake
        self.model = model.eval().to(self.device)
        self.protocol = protocol or pretrained.protocol
        if class_names is None:
            class_names = pretrained.class_names or [f"class_{i}" for i in range(model.num_classes)]
        self.class_names = list(class_names)
        if len(self.class_names) != model.num_classes:
            raise ValueError(f"{len(self.class_names)} class names for a {model.num_classes}-class model")
        self.batch_views = batch_views
        self.backend = backend
        self.dtype = resolve_dtype(dtype, self.device)
        self._forward = compile_for_inference(self.model) if compile else self.model
        self._compile = compile
        self._feature_forwards: dict[tuple[str, bool], Any] = {}  # (kind, compiled) -> forward

    @classmethod
    def from_pretrained(
        cls,
        name_or_checkpoint: str | os.PathLike,
        *,
        checkpoint: str | os.PathLike | None = None,
        labels: str | os.PathLike | None = None,
        views: tuple[int, int] | None = None,
        frames: int | None = None,
        device: str = "cpu",
        progress: bool = True,
        dtype: str | torch.dtype | None = None,
        compile: bool = False,
        **overrides: Any,
    ) -> VideoClassifier:
        """A preset name (published weights unless ``checkpoint`` is given) or one of our checkpoint files."""
        from .factory import create_model

        check_device(device)  # before the weights are read or downloaded

        model = create_model(
            name_or_checkpoint,
            pretrained=checkpoint is None,
            checkpoint=checkpoint,
            labels=labels,
            progress=progress,
            **overrides,
        )
        clips, crops = views if views else (None, None)
        protocol = model.pretrained_cfg.protocol.replace(frames=frames, clips=clips, crops=crops)
        return cls(model, protocol, device=device, dtype=dtype, compile=compile)

    def views(self, video: str | os.PathLike | VideoReader | np.ndarray | torch.Tensor) -> torch.Tensor:
        """uint8 test views [V, 3, T, S, S] of a file (or a video opened with :func:`~uniformerv2.data.open_video`),
        or of decoded frames uint8 [F, H, W, 3]."""
        from .data import VideoReader, read_test_views, sample_test_indices, views_from_frames

        if isinstance(video, (str, os.PathLike, VideoReader)):
            return read_test_views(video, self.protocol, backend=self.backend)
        frames = video.detach().cpu().numpy() if isinstance(video, torch.Tensor) else np.asarray(video)
        if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
            raise ValueError(
                f"expected decoded frames as uint8 [frames, height, width, 3], got {frames.dtype} {list(frames.shape)}"
            )
        inds = sample_test_indices(len(frames), self.protocol)
        return views_from_frames(frames[inds], self.protocol)

    @torch.inference_mode()
    def _run(self, forward: Callable[[torch.Tensor], torch.Tensor], views: torch.Tensor) -> torch.Tensor:
        """``forward`` over uint8 views [V, ...] in chunks of ``batch_views``: float32 outputs [V, ...] on the CPU."""
        from .data import normalize

        out = []
        for chunk in views.split(self.batch_views):
            with autocast(self.device, self.dtype):
                out.append(forward(normalize(chunk).to(self.device)).float().cpu())
        return torch.cat(out)

    def scores_of_views(self, views: torch.Tensor) -> torch.Tensor:
        """Softmax probabilities averaged over views (:func:`probabilities`): [num_classes]."""
        return probabilities(self._run(self._forward, views))

    def scores_of_videos(self, view_sets: Sequence[torch.Tensor]) -> torch.Tensor:
        """:meth:`scores_of_views` of several videos (or windows) at once, their views sharing forward passes:
        [len(view_sets), num_classes]."""
        logits = self._run(self._forward, torch.cat(list(view_sets)))
        return torch.stack([probabilities(x) for x in logits.split([len(v) for v in view_sets])])

    def scores(self, video: str | os.PathLike | VideoReader | np.ndarray | torch.Tensor) -> torch.Tensor:
        return self.scores_of_views(self.views(video))

    def feature_forward(self, kind: str = "pooled", *, compile: bool | None = None) -> Callable[..., torch.Tensor]:
        """The network as ``f(normalised views) -> features`` of ``kind`` (see :meth:`features`), made once per
        kind; ``compile``: under :func:`~uniformerv2.precision.compile_for_inference` (default: as the classifier)."""
        compile = self._compile if compile is None else compile
        if (kind, compile) not in self._feature_forwards:
            from .features import feature_forward

            self._feature_forwards[(kind, compile)] = feature_forward(self.model, kind, compile=compile)
        return self._feature_forwards[(kind, compile)]

    def features_of_views(self, views: torch.Tensor, kind: str = "pooled", *, average: bool = True) -> torch.Tensor:
        """Features of uint8 views [V, 3, T, S, S], float32 on the CPU: their mean (``average``) or one per view."""
        feats = self._run(self.feature_forward(kind), views)
        return feats.mean(0) if average else feats

    def features(
        self,
        video: str | os.PathLike | VideoReader | np.ndarray | torch.Tensor,
        kind: str = "pooled",
        *,
        average: bool = True,
    ) -> torch.Tensor:
        """Features of a video file or decoded frames over the protocol's test views, float32 on the CPU.

        ``kind``: see :meth:`UniFormerV2.forward_features` (``pooled``, the feature the head sees, by default;
        ``video-token``, ``frame-cls``, ``patch-mean``, ``logits``, ``probs``). ``average``: the mean over the
        clips x crops views (``[C]`` or ``[T, C]``; for ``pooled`` what MMAction2's
        ``tools/misc/clip_feature_extraction.py`` returns), else one per view (``[views, ...]``).
        """
        return self.features_of_views(self.views(video), kind, average=average)

    def explain(
        self, video: str | os.PathLike, *, target: int | str | None = None, method: str = "both", block: int = -1
    ) -> Any:
        """Where and when the model looks for ``target`` (a class name or index; default: the predicted class) on
        the centre test view: an :class:`~uniformerv2.explain.Explanation` with Grad-CAM and/or attention maps."""
        from .explain import explain_video

        return explain_video(
            self.model,
            video,
            protocol=self.protocol,
            target=target,
            class_names=self.class_names,
            method=method,
            block=block,
            device=self.device,
            dtype=self.dtype,
            backend=self.backend,
        )

    def stream(
        self,
        source: str,
        *,
        window: float | str | Duration = 2.0,
        every: float | str | Duration = 0.5,
        top_k: int = 5,
        realtime: bool = False,
        duration: float | None = None,
        **kwargs: Any,
    ) -> Any:
        """Decisions on a camera, stream or file (``realtime``: played at its own speed): every ``every`` seconds
        the newest ``window`` seconds scored (see :mod:`uniformerv2.live`; durations as
        :func:`~uniformerv2.duration.parse_duration` reads them, ``16f`` frames where the source's frame rate is
        known); a generator of :class:`~uniformerv2.live.Decision`."""
        from .live import stream

        return stream(
            self, source, window=window, every=every, top_k=top_k, realtime=realtime, duration=duration, **kwargs
        )

    def class_rows(self, names: Sequence[str], *, source: str = "labels") -> list[int]:
        """The head rows of the classes ``names`` names, matched as ``--labels`` matches them (exactly, through
        the Kinetics-710 channel maps for a 710-class model, then ignoring case and punctuation); an
        :class:`~uniformerv2.errors.AnnotationError` names those that match nothing."""
        from .data.labels import class_rows

        return class_rows(names, self.class_names, source=source)

    def top_k(self, scores: torch.Tensor, top_k: int = 5) -> list[tuple[str, float]]:
        """The ``top_k`` most probable classes of ``scores``: ``[(label, score), ...]`` (:func:`top_classes`)."""
        return top_classes(scores, self.class_names, top_k)

    def predict(
        self, video: str | os.PathLike | VideoReader | np.ndarray | torch.Tensor, top_k: int = 5
    ) -> list[tuple[str, float]]:
        """``[(label, probability), ...]``, most probable first, for a video file or decoded frames."""
        return self.top_k(self.scores(video), top_k)
