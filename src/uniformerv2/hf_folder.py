"""Hugging Face-style model folders: writing one (``model.safetensors``, ``config.json``, a model card
``README.md``), fetching one from the Hub (``hf-hub:ORG/NAME``) and uploading one. Reading the weights back is
:func:`uniformerv2.checkpoint.read_checkpoint`'s job (it accepts the folder)."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ._version import __version__
from .atomic import atomic_write_text
from .checkpoint import PRETRAINED_WEIGHTS, save_checkpoint
from .config import PretrainedCfg
from .conversions import FORMAT_NAME
from .errors import DownloadError, UsageError

if TYPE_CHECKING:  # annotations only
    from types import ModuleType

    from .model import UniFormerV2

__all__ = [
    "HF_HUB_PREFIX",
    "PRETRAINED_WEIGHTS",
    "PRETRAINED_CONFIG",
    "MODEL_CARD",
    "save_pretrained",
    "snapshot",
    "upload_folder",
]

HF_HUB_PREFIX = "hf-hub:"
PRETRAINED_CONFIG, MODEL_CARD = "config.json", "README.md"  # beside PRETRAINED_WEIGHTS, "model.safetensors"


# ------------------------------------------------------------------------------------------- writing a folder


def save_pretrained(
    model: UniFormerV2, directory: str | os.PathLike[str], *, metrics: Mapping[str, Any] | None = None
) -> Path:
    """Write ``model`` as a Hugging Face-style directory: ``model.safetensors`` (our format, self-describing),
    ``config.json`` (architecture, ``id2label``, test protocol, input normalisation, the preset) and a model card
    ``README.md`` stating them and any ``metrics`` measured with ``test``. Each file is written atomically."""
    from .data.transforms import MEAN, STD

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    pretrained: PretrainedCfg = model.pretrained_cfg
    save_checkpoint(model, directory / PRETRAINED_WEIGHTS)
    names = list(pretrained.class_names) if pretrained.class_names else None
    config = {
        "architectures": ["UniFormerV2"],
        "format": FORMAT_NAME,
        "uniformerv2_version": __version__,
        "preset": pretrained.preset,
        "config": model.cfg.to_dict(),
        "num_labels": model.num_classes,
        "id2label": {str(i): n for i, n in enumerate(names)} if names else None,
        "label2id": {n: i for i, n in enumerate(names)} if names else None,
        "protocol": pretrained.protocol.to_dict(),
        "normalization": {"mean": [MEAN] * 3, "std": [STD] * 3, "input": "RGB uint8 frames, (x - mean) / std"},
        "metrics": dict(metrics) if metrics else None,
    }
    atomic_write_text(directory / PRETRAINED_CONFIG, json.dumps(config, indent=1) + "\n")
    atomic_write_text(directory / MODEL_CARD, _model_card(model, names, metrics))
    return directory


def _model_card(model: UniFormerV2, names: list[str] | None, metrics: Mapping[str, Any] | None) -> str:
    cfg, pretrained = model.cfg, model.pretrained_cfg
    p = pretrained.protocol
    shown = ", ".join(names[:20]) + (f", ... ({len(names)} in all)" if len(names) > 20 else "") if names else "unnamed"
    lines = [
        "---",
        "library_name: uniformerv2",
        "tags: [video-classification, action-recognition, uniformerv2]",
        "---",
        "",
        f"# UniFormerV2{' (' + pretrained.preset + ')' if pretrained.preset else ''}",
        "",
        "A UniFormerV2 video classifier (Li et al., arXiv 2211.09552) saved with `uniformerv2`.",
        "",
        "## Architecture",
        "",
        f"CLIP ViT with {cfg.layers} local UniBlocks of width {cfg.width} ({cfg.heads} heads, patch {cfg.patch_size}, "
        f"input {cfg.input_resolution} px), {cfg.n_layers} global UniBlocks reading blocks "
        f"{list(cfg.return_list)}, local MHRA {'off' if cfg.no_lmhra else 'on'}, "
        f"{'no fusion (frozen)' if cfg.frozen else 'learned fusion'}; {model.num_classes} classes.",
        "",
        "## Classes",
        "",
        shown,
        "",
        "## Test protocol",
        "",
        f"{p.describe()}; the softmax is averaged over the {p.views} views. Frames are RGB, "
        "normalised as (x - 114.75) / 57.375.",
        "",
        "## Use",
        "",
        "```python",
        "import uniformerv2",
        'clf = uniformerv2.VideoClassifier.from_pretrained("path/to/this/folder")',
        'clf.predict("video.mp4")',
        "```",
        "",
    ]
    if metrics:
        lines += ["## Measured accuracy", "", "| metric | value |", "|---|---|"]
        lines += [f"| {k} | {v:.4f} |" if isinstance(v, float) else f"| {k} | {v} |" for k, v in metrics.items()]
        lines.append("")
    return "\n".join(lines)


# --------------------------------------------------------------------------------------- Hugging Face Hub


def _huggingface_hub() -> ModuleType:
    try:
        import huggingface_hub
    except ImportError:
        raise DownloadError("the Hugging Face Hub needs huggingface_hub: pip install huggingface_hub") from None
    return huggingface_hub


def snapshot(name: str, *, revision: str | None = None) -> Path:
    """The local directory of ``hf-hub:ORG/NAME`` (downloaded into the Hugging Face cache by huggingface_hub)."""
    repo_id = name[len(HF_HUB_PREFIX) :] if name.startswith(HF_HUB_PREFIX) else name
    hf = _huggingface_hub()
    try:
        return Path(
            hf.snapshot_download(
                repo_id=repo_id, revision=revision, allow_patterns=[PRETRAINED_CONFIG, PRETRAINED_WEIGHTS, MODEL_CARD]
            )
        )
    except Exception as e:  # noqa: BLE001 - offline, unknown repository, authentication: one message
        raise DownloadError(
            f"{HF_HUB_PREFIX}{repo_id}: could not be fetched from the Hugging Face Hub "
            f"({type(e).__name__}: {str(e).splitlines()[0][:200]}). Offline, pass the local "
            "directory written by save_pretrained instead."
        ) from None


def upload_folder(
    directory: str | os.PathLike[str], repo_id: str, *, private: bool = False, token: str | None = None
) -> str:
    """Create ``repo_id`` on the Hub if needed and upload a :func:`save_pretrained`
    directory to it; returns the commit URL."""
    hf = _huggingface_hub()
    api = hf.HfApi(token=token)
    api.create_repo(repo_id, private=private, exist_ok=True)
    info = api.upload_folder(
        folder_path=str(directory), repo_id=repo_id, commit_message="Upload UniFormerV2 model with uniformerv2"
    )
    return str(getattr(info, "commit_url", info))


#: Keys read as measured metrics from a plain mapping (our demo's ``metrics.json`` among them).
_METRIC_KEY = re.compile(r"^(top\d+|mean\d*|mean_class_accuracy|best_val_top\d+|top\d+_frames_shuffled|m?AP)$", re.I)


def read_metrics(path: str | os.PathLike[str]) -> dict[str, float]:
    """Measured metrics for a model card from a JSON file: ``test --out-dir``'s ``*_metrics.json`` (its
    ``metrics``), the demo's or train's ``metrics.json``, or a plain mapping of names to numbers (accuracy-like
    keys: ``top1``, ``top5``, ``mean1``, ``mean_class_accuracy``, ``best_val_top1``, ``mAP``, ...). Anything else
    is a :class:`~uniformerv2.errors.UsageError` naming the file."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8-sig"))
    except (OSError, ValueError) as e:
        raise UsageError(f"{os.fspath(path)}: not a readable metrics JSON ({e})") from None
    if isinstance(data, dict) and isinstance(data.get("metrics"), dict):
        data = data["metrics"]
    if not isinstance(data, dict):
        raise UsageError(
            f"{os.fspath(path)}: expected a JSON object of metrics (test's *_metrics.json, metrics.json or "
            f'{{"top1": 0.81}}), got a {type(data).__name__}'
        )
    found = {
        str(k): float(v)
        for k, v in data.items()
        if _METRIC_KEY.match(str(k)) and isinstance(v, (int, float)) and not isinstance(v, bool)
    }
    if not found:
        raise UsageError(f"{os.fspath(path)}: no accuracy metrics in it (keys: {', '.join(map(str, data)) or 'none'})")
    return found
