"""What describes a model without building it (no torch): :class:`UniFormerV2Config`, the architecture, and
:class:`PretrainedCfg`, what a built model knows about where it came from (preset, test protocol, class names).

Like a Hugging Face ``configuration_*.py`` file, this module can be read and used without PyTorch; our
``.safetensors`` checkpoints carry both as JSON metadata.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .errors import ConfigError
from .protocol import Protocol

__all__ = ["UniFormerV2Config", "PretrainedCfg", "ConfigError"]

# Training switches that older files stored in the architecture; they are read and dropped (gradient
# checkpointing is set on the model with ``set_grad_checkpointing``, not stored).
_TRAINING_KEYS = ("use_checkpoint", "checkpoint_num")


@dataclass
class UniFormerV2Config:
    """Architecture of a UniFormerV2 classifier.

    Backbone fields carry the names and meaning of MMAction2 1.2.0's ``UniFormerV2`` backbone arguments; head
    fields those of its ``UniFormerHead``. ``frozen`` comes from the authors' original code: such a model has no
    fusion (it classifies the video token alone, so it has no ``balance`` parameter) and a frozen CLIP part.
    """

    # backbone: CLIP ViT (local UniBlocks)
    input_resolution: int = 224
    patch_size: int = 16
    width: int = 768
    layers: int = 12
    heads: int = 12
    backbone_drop_path_rate: float = 0.0
    t_size: int = 8  # frames per clip the preset is trained on (the network accepts any count)
    kernel_size: int = 3  # temporal kernel of the downsampling patch embedding
    dw_reduction: float = 1.5
    temporal_downsample: bool = False
    no_lmhra: bool = True
    double_lmhra: bool = False
    # global UniBlocks
    return_list: tuple[int, ...] = (8, 9, 10, 11)
    n_layers: int = 4
    n_dim: int = 768
    n_head: int = 12
    mlp_factor: float = 4.0
    drop_path_rate: float = 0.0
    mlp_dropout: tuple[float, ...] = (0.5, 0.5, 0.5, 0.5)
    # classification head
    num_classes: int = 400
    dropout_ratio: float = 0.5
    # the original code's frozen models: no fusion, video token only
    frozen: bool = False

    def __post_init__(self) -> None:
        self.return_list = tuple(int(i) for i in self.return_list)
        self.mlp_dropout = tuple(float(p) for p in self.mlp_dropout)
        problems = []
        if self.input_resolution % self.patch_size:
            problems.append(
                f"input_resolution={self.input_resolution} is not a multiple of patch_size={self.patch_size}"
            )
        if self.width % self.heads:
            problems.append(f"width={self.width} is not divisible by heads={self.heads}")
        if self.n_dim != self.width:
            problems.append(
                f"n_dim={self.n_dim} must equal width={self.width} (the global blocks read the local blocks' tokens)"
            )
        if self.n_dim % self.n_head:
            problems.append(f"n_dim={self.n_dim} is not divisible by n_head={self.n_head}")
        if len(self.return_list) != self.n_layers:
            problems.append(f"return_list has {len(self.return_list)} entries but n_layers={self.n_layers}")
        if len(self.mlp_dropout) != self.n_layers:
            problems.append(f"mlp_dropout has {len(self.mlp_dropout)} entries but n_layers={self.n_layers}")
        bad = [i for i in self.return_list if not 0 <= i < self.layers]
        if bad:
            problems.append(f"return_list entries {bad} are not block indices 0..{self.layers - 1}")
        if list(self.return_list) != sorted(set(self.return_list)):
            problems.append(f"return_list={list(self.return_list)} must be strictly increasing")
        if self.num_classes < 1:
            problems.append(f"num_classes={self.num_classes} must be positive")
        if self.t_size < 1:
            problems.append(f"t_size={self.t_size} must be positive")
        if not self.no_lmhra and int(self.width // self.dw_reduction) < 1:
            problems.append(f"dw_reduction={self.dw_reduction} leaves no channels of width={self.width}")
        if problems:
            raise ConfigError("invalid UniFormerV2 configuration: " + "; ".join(problems))

    @property
    def grid_size(self) -> int:
        return self.input_resolution // self.patch_size

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["return_list"] = list(self.return_list)
        d["mlp_dropout"] = list(self.mlp_dropout)
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> UniFormerV2Config:
        d = {k: v for k, v in d.items() if k not in _TRAINING_KEYS}
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise ConfigError(f"unknown UniFormerV2 configuration fields: {', '.join(unknown)}")
        return cls(**d)

    def replace(self, **overrides: Any) -> UniFormerV2Config:
        names = {f.name for f in dataclasses.fields(self)}
        unknown = sorted(set(overrides) - names)
        if unknown:
            raise ConfigError(f"unknown UniFormerV2 arguments: {', '.join(unknown)}; known: {', '.join(sorted(names))}")
        return dataclasses.replace(self, **overrides)


@dataclass(frozen=True)
class PretrainedCfg:
    """What a built model knows about itself besides its architecture (timm's ``model.pretrained_cfg``).

    ``preset``: the zoo name it was built from (None for a self-describing checkpoint); ``checkpoint``: the file or
    URL its weights came from (None for random weights); ``protocol``: its test views; ``class_names``: one name per
    output (None when nothing names them) and ``class_names_source``: where they came from.
    """

    protocol: Protocol
    preset: str | None = None
    checkpoint: str | None = None
    class_names: tuple[str, ...] | None = None
    class_names_source: str | None = None

    @property
    def id2label(self) -> dict[int, str] | None:
        """Hugging Face's name for the class names."""
        return None if self.class_names is None else dict(enumerate(self.class_names))

    def replace(self, **changes: Any) -> PretrainedCfg:
        return dataclasses.replace(self, **changes)

    def to_metadata(self) -> dict[str, str]:
        """The safetensors metadata entries that record this (our checkpoint format)."""
        meta = {"protocol": json.dumps(self.protocol.to_dict())}
        if self.preset:
            meta["preset"] = self.preset
        if self.class_names is not None:
            meta["class_names"] = json.dumps(list(self.class_names))
        return meta
