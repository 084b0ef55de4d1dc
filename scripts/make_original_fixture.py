"""Golden fixture from the authors' original UniFormerV2 code (OpenGVLab/UniFormerV2, SlowFast-based, `.pyth`).

Run with the reference environment's Python (it needs torch and timm), never the project's. The original model
file is not part of this project: extract it from the authors' repository into a scratch directory first, e.g.

  mkdir -p /tmp/orig && git -C <UniFormerV2 git dir> show HEAD:slowfast/models/uniformerv2_model.py \\
      > /tmp/orig/uniformerv2_model.py
  /tmp/uniformerv2-ref/bin/python scripts/make_original_fixture.py --model-file /tmp/orig/uniformerv2_model.py \\
      --width 32 --layers 3 --heads 2 --input-resolution 28 --patch-size 14 --frames 4 \\
      --no-lmhra --return-list 2 --n-layers 1 --n-dim 32 --n-head 2 --mlp-dropout 0.5 --num-classes 10 \\
      --batch 2 --seed 0 --out /tmp/fixture

The model file imports `timm.models.layers.DropPath` and `slowfast.utils.logging`; the latter is replaced here by
a stand-in module whose `get_logger` returns a standard-library logger. The file itself is loaded unchanged.

The network is the original `VisionTransformer` built with the given (tiny) arguments, held as the attribute
`backbone` of a wrapper module the way SlowFast's `Uniformerv2` model holds it, so state-dict keys read
`backbone.<...>` as in the released `.pyth` checkpoints. Every parameter and BatchNorm statistic is randomised from
--seed (zero-initialised ones too); the model runs in eval mode on a random, already normalised input.

Writes into --out:
  checkpoint.pyth  SlowFast checkpoint layout (slowfast/utils/checkpoint.py save_checkpoint):
                   {'epoch', 'model_state': <wrapper state dict>, 'optimizer_state': {}, 'scaler': {},
                    'cfg': <YAML text in SlowFast's config layout>}; loads with torch.load(weights_only=True)
  input.pt         normalised video, float32, shape [batch, 3, frames, size, size] (what the network receives)
  outputs.pt       {'logits': [batch, num_classes] the wrapper's output,
                    'features': [batch, n_dim] output of transformer.proj.0 (the LayerNorm before the classifier)}
  meta.json        the command, arguments, versions, the model file's SHA-256 and output shapes
"""

import argparse
import hashlib
import importlib.util
import json
import logging
import os
import platform
import sys
import types

import torch
from torch import nn


def install_slowfast_logging_stub():
    """Make `import slowfast.utils.logging as logging` work: `get_logger(name)` gives a stdlib logger."""
    slowfast = types.ModuleType("slowfast")
    utils = types.ModuleType("slowfast.utils")
    log = types.ModuleType("slowfast.utils.logging")
    log.get_logger = logging.getLogger
    slowfast.utils = utils
    utils.logging = log
    sys.modules.setdefault("slowfast", slowfast)
    sys.modules.setdefault("slowfast.utils", utils)
    sys.modules.setdefault("slowfast.utils.logging", log)


def load_model_module(path):
    install_slowfast_logging_stub()
    spec = importlib.util.spec_from_file_location("original_uniformerv2_model", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class Uniformerv2(nn.Module):
    """Stand-in for SlowFast's `Uniformerv2` model: the network under `backbone`, the clip list unwrapped."""

    def __init__(self, backbone):
        super().__init__()
        self.backbone = backbone

    def forward(self, x):
        return self.backbone(x[0])


def randomise(model, seed):
    """Overwrite every parameter and BatchNorm running statistic with seeded noise (zero-initialised ones too).

    Weights get a standard deviation of 1/sqrt(fan_in), so every branch (the local MHRA and its BatchNorm
    statistics, the dynamic position encodings, the zero-initialised projections) moves the outputs by O(1)
    and a mistake in any of them shows far above float32 rounding. (A fixed 0.02 scale leaves the local MHRA's
    BatchNorm statistics below 1e-6 of the output at this size.)
    """
    norm_types = (nn.LayerNorm, nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)
    norm_weights = {
        f"{m_name}.weight" if m_name else "weight" for m_name, m in model.named_modules() if isinstance(m, norm_types)
    }
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            noise = torch.randn(p.shape, generator=gen)
            if name in norm_weights:
                p.copy_(1.0 + 0.2 * noise)
            elif p.ndim == 1:
                p.copy_(0.2 * noise)
            else:
                fan_in = p[0].numel()
                p.copy_(noise / fan_in**0.5)
        for name, b in model.named_buffers():
            if name.endswith("running_mean"):
                b.copy_(0.5 * torch.randn(b.shape, generator=gen))
            elif name.endswith("running_var"):
                b.copy_(0.5 + torch.rand(b.shape, generator=gen))


def slowfast_cfg_text(args):
    """The arguments in the layout of SlowFast's config (the keys `Uniformerv2.__init__` reads), as YAML text."""
    import yaml

    cfg = {
        "MODEL": {
            "MODEL_NAME": "Uniformerv2",
            "NUM_CLASSES": args.num_classes,
            "USE_CHECKPOINT": False,
            "CHECKPOINT_NUM": [0],
        },
        "DATA": {
            "NUM_FRAMES": args.t_size,
            "TRAIN_CROP_SIZE": args.input_resolution,
            "TEST_CROP_SIZE": args.input_resolution,
        },
        "UNIFORMERV2": {
            "BACKBONE": (
                f"VisionTransformer(input_resolution={args.input_resolution:d}, "
                f"patch_size={args.patch_size:d}, width={args.width:d}, layers={args.layers:d}, "
                f"heads={args.heads:d})"
            ),
            "N_LAYERS": args.n_layers,
            "N_DIM": args.n_dim,
            "N_HEAD": args.n_head,
            "MLP_FACTOR": args.mlp_factor,
            "BACKBONE_DROP_PATH_RATE": args.backbone_drop_path_rate,
            "DROP_PATH_RATE": args.drop_path_rate,
            "MLP_DROPOUT": list(args.mlp_dropout),
            "CLS_DROPOUT": args.cls_dropout,
            "RETURN_LIST": list(args.return_list),
            "DW_REDUCTION": args.dw_reduction,
            "TEMPORAL_DOWNSAMPLE": args.temporal_downsample,
            "NO_LMHRA": args.no_lmhra,
            "DOUBLE_LMHRA": args.double_lmhra,
            "FROZEN": args.frozen,
            "PRETRAIN": "",
            "DELETE_SPECIAL_HEAD": False,
        },
    }
    return yaml.safe_dump(cfg, sort_keys=False)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model-file", required=True, help="the original slowfast/models/uniformerv2_model.py")
    ap.add_argument("--model-source", default="", help="free text recorded in meta.json (e.g. repository commit)")
    ap.add_argument("--input-resolution", type=int, default=28)
    ap.add_argument("--patch-size", type=int, default=14)
    ap.add_argument("--width", type=int, default=32)
    ap.add_argument("--layers", type=int, default=3)
    ap.add_argument("--heads", type=int, default=2)
    ap.add_argument("--frames", type=int, default=4, help="input frames T")
    ap.add_argument(
        "--t-size",
        type=int,
        default=None,
        help="the original's t_size (DATA.NUM_FRAMES; halved inside when temporally downsampling); "
        "defaults to --frames",
    )
    ap.add_argument("--kernel-size", type=int, default=3)
    ap.add_argument("--dw-reduction", type=float, default=1.5)
    ap.add_argument("--temporal-downsample", action="store_true")
    ap.add_argument("--no-lmhra", action="store_true")
    ap.add_argument(
        "--single-lmhra",
        dest="double_lmhra",
        action="store_false",
        help="double_lmhra=False (default True, as in SlowFast's defaults)",
    )
    ap.add_argument("--return-list", type=int, nargs="+", required=True)
    ap.add_argument("--n-layers", type=int, required=True)
    ap.add_argument("--n-dim", type=int, default=32)
    ap.add_argument("--n-head", type=int, default=2)
    ap.add_argument("--mlp-factor", type=float, default=4.0)
    ap.add_argument("--mlp-dropout", type=float, nargs="+", required=True)
    ap.add_argument("--cls-dropout", type=float, default=0.5)
    ap.add_argument("--backbone-drop-path-rate", type=float, default=0.0)
    ap.add_argument("--drop-path-rate", type=float, default=0.0)
    ap.add_argument("--num-classes", type=int, default=10)
    ap.add_argument("--frozen", action="store_true")
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    if args.t_size is None:
        args.t_size = args.frames

    module = load_model_module(args.model_file)
    torch.manual_seed(args.seed)
    backbone = module.VisionTransformer(
        input_resolution=args.input_resolution,
        patch_size=args.patch_size,
        width=args.width,
        layers=args.layers,
        heads=args.heads,
        output_dim=args.width,
        backbone_drop_path_rate=args.backbone_drop_path_rate,
        use_checkpoint=False,
        checkpoint_num=[0],
        t_size=args.t_size,
        kernel_size=args.kernel_size,
        dw_reduction=args.dw_reduction,
        temporal_downsample=args.temporal_downsample,
        no_lmhra=args.no_lmhra,
        double_lmhra=args.double_lmhra,
        return_list=list(args.return_list),
        n_layers=args.n_layers,
        n_dim=args.n_dim,
        n_head=args.n_head,
        mlp_factor=args.mlp_factor,
        drop_path_rate=args.drop_path_rate,
        mlp_dropout=list(args.mlp_dropout),
        cls_dropout=args.cls_dropout,
        num_classes=args.num_classes,
        frozen=args.frozen,
    )
    model = Uniformerv2(backbone)
    randomise(model, args.seed)
    model.eval()

    gen = torch.Generator().manual_seed(args.seed + 1)
    x = torch.randn((args.batch, 3, args.frames, args.input_resolution, args.input_resolution), generator=gen)
    captured = {}
    hook = model.backbone.transformer.proj[0].register_forward_hook(
        lambda m, inp, out: captured.__setitem__("features", out.detach().clone())
    )
    with torch.no_grad():
        logits = model([x])
    hook.remove()

    os.makedirs(args.out, exist_ok=True)
    checkpoint = {
        "epoch": 1,
        "model_state": model.state_dict(),
        "optimizer_state": {},
        "scaler": {},
        "cfg": slowfast_cfg_text(args),
    }
    torch.save(checkpoint, os.path.join(args.out, "checkpoint.pyth"))
    torch.save(x, os.path.join(args.out, "input.pt"))
    torch.save({"logits": logits, "features": captured["features"]}, os.path.join(args.out, "outputs.pt"))
    # check the files load without pickled code
    for name in ("checkpoint.pyth", "input.pt", "outputs.pt"):
        torch.load(os.path.join(args.out, name), weights_only=True)

    import timm

    with open(args.model_file, "rb") as f:
        sha = hashlib.sha256(f.read()).hexdigest()
    meta = {
        "command": " ".join(sys.argv),
        "python_executable": sys.executable,
        "args": vars(args),
        "model_file_sha256": sha,
        "model_source": args.model_source,
        "torch": torch.__version__,
        "timm": timm.__version__,
        "python": platform.python_version(),
        "note": "input.pt is already normalised; keys are those of SlowFast's Uniformerv2 (backbone.*)",
        "shapes": {"input": list(x.shape), "logits": list(logits.shape), "features": list(captured["features"].shape)},
    }
    with open(os.path.join(args.out, "meta.json"), "w") as f:
        json.dump(meta, f, indent=1)
    print(json.dumps(meta["shapes"]))


if __name__ == "__main__":
    main()
