"""UniFormerV2 video action recognition: the published models, checkpoints and protocols.

>>> import uniformerv2
>>> model = uniformerv2.create_model("uniformerv2-base-p16-res224_clip-kinetics710-pre_8xb32-u8_kinetics400-rgb",
...                                  pretrained=True)
>>> logits = model(video)  # normalised float video [N, 3, T, H, W] -> [N, 400]
"""
from .checkpoint import CheckpointError, convert, load_checkpoint, save_checkpoint
from .factory import (
    count_flops,
    count_parameters,
    create_model,
    init_from_clip,
    model_info,
)
from .inference import VideoClassifier
from .model import UniFormerV2, UniFormerV2Config
from .zoo import Preset, get_preset, list_models

__version__ = "0.1.0"
__all__ = [
    "CheckpointError",
    "Preset",
    "UniFormerV2",
    "UniFormerV2Config",
    "VideoClassifier",
    "convert",
    "count_flops",
    "count_parameters",
    "create_model",
    "get_preset",
    "init_from_clip",
    "list_models",
    "load_checkpoint",
    "model_info",
    "save_checkpoint",
    "__version__",
]
