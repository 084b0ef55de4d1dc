"""Feature extraction at corpus scale: one feature file per video, a manifest, and resumable runs.

Two modes (:func:`extract`):

* ``mode="video"``: one vector per video, the mean over the protocol's ``clips x crops`` test views of the
  network's feature (``kind``, see :meth:`uniformerv2.model.UniFormerV2.forward_features`). With ``kind="pooled"``
  this is exactly what MMAction2 1.2.0's ``tools/misc/clip_feature_extraction.py`` returns for a UniFormerV2 config
  and checkpoint: that tool keeps the config's test views (``UniformSample`` clips, ``ThreeCrop``), passes the
  backbone's clip feature through ``FeatureHead`` and averages the views (``average_clips='score'``).
* ``mode="windows"``: sliding windows over the whole video (:class:`WindowSpec`, :func:`plan_windows`; lengths are
  :class:`~uniformerv2.duration.Duration`: ``16f`` frames, ``2s`` seconds), each window sampled to the model's frame
  count and seen through ``crops`` crops (their features averaged); one ``[num_windows, C]`` array per video, with
  every window's start and end time.

Layout of ``out_dir``: the features of ``videos/a/b.mp4`` (relative path ``a/b.mp4``) are ``a/b.npy`` (or
``a/b.safetensors``; where two videos differ only by extension, both keep it: ``a/b.mp4.npy``), in windows mode
with ``a/b.windows.csv`` beside them (one row per window: start/end time and frame, sampled frames). Every file is
written atomically. ``manifest.csv`` and ``manifest.json`` list every video of the run with its status (``ok``,
``failed`` with the reason, ``pending``), shape, fps, frame count, duration, window and stride (frames and
seconds), ActionFormer's ``feat_stride`` / ``num_frames`` / ``default_fps``, the model and its checkpoint (name and
sha256). They are rebuilt from the journal ``manifest.log.jsonl`` (one per process under torchrun:
``manifest.log.rank<N>.jsonl``): a line is appended when a video's files are on disk (its size and sha256 with it),
so a killed run loses at most the video in flight. Running the same extraction again skips every video whose files
are recorded there and still match; other settings in the same ``out_dir`` are refused unless ``overwrite``.

Throughput: videos are decoded in ``DataLoader`` workers while the network runs; views (video mode) or windows
(windows mode, read in chunks so a long video never sits in memory whole) of several videos share a forward pass of
at most ``batch_views`` views. Under ``torchrun`` every process takes a disjoint share of the videos still to do.

* :mod:`.network`: :func:`feature_forward`, the network's features as a (compilable) callable
* :mod:`.windows`: :class:`WindowSpec`, :class:`WindowPlan`, :func:`plan_windows`
* :mod:`.jobs`: the videos of a run (:func:`collect_videos`) and their files' names (:func:`assign_outputs`)
* :mod:`.journal`: the journal, the run's settings and the manifest; :mod:`.files`: one video's files
* :mod:`.run`: :func:`extract`, the decoding stream and the run loop
"""

from ..duration import Duration
from ..model import FEATURE_KINDS
from .jobs import FORMATS, VideoJob, assign_outputs, collect_videos
from .journal import MANIFEST_FIELDS, read_journal, write_manifest
from .network import feature_forward
from .run import MODES, ExtractResult, extract
from .windows import WindowPlan, WindowSpec, plan_windows

__all__ = [
    "FEATURE_KINDS",
    "MODES",
    "FORMATS",
    "Duration",
    "WindowSpec",
    "WindowPlan",
    "VideoJob",
    "ExtractResult",
    "feature_forward",
    "plan_windows",
    "collect_videos",
    "assign_outputs",
    "extract",
    "read_journal",
    "write_manifest",
    "MANIFEST_FIELDS",
]
