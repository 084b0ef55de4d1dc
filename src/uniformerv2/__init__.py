"""UniFormerV2 video action recognition: the published models, checkpoints and protocols.

>>> import uniformerv2
>>> model = uniformerv2.create_model("uniformerv2-base-p16-res224_clip-kinetics710-pre_8xb32-u8_kinetics400-rgb",
...                                  pretrained=True)
>>> logits = model(video)  # normalised float video [N, 3, T, H, W] -> [N, 400]
>>> model.pretrained_cfg.protocol, model.pretrained_cfg.class_names[:2]
"""

from ._version import __version__
from .checkpoint import load_checkpoint, save_checkpoint
from .config import PretrainedCfg, UniFormerV2Config
from .errors import CheckpointError, UniFormerV2Error
from .factory import convert, count_flops, count_parameters, create_model, from_pretrained, init_from_clip, model_info
from .inference import VideoClassifier
from .model import UniFormerV2
from .protocol import Protocol
from .zoo import Preset, get_preset, list_models

__all__ = [
    "CheckpointError",
    "Preset",
    "PretrainedCfg",
    "Protocol",
    "UniFormerV2",
    "UniFormerV2Config",
    "UniFormerV2Error",
    "VideoClassifier",
    "convert",
    "count_flops",
    "count_parameters",
    "create_model",
    "from_pretrained",
    "get_preset",
    "init_from_clip",
    "list_models",
    "load_checkpoint",
    "model_info",
    "save_checkpoint",
    "__version__",
]
