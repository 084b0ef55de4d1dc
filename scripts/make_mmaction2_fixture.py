"""MMAction2 1.2.0 golden fixture with a randomisation under which every branch of the network matters.

Run with the reference environment's Python (see /work/shared/ref/setup.sh), never the project's. It imports the
shared oracle `/work/shared/ref/dump.py` (or `--dump-py PATH`) and reuses its `build`, `config_path` and
`parse_value`: the model is built, run and saved exactly as `dump.py` does, with the same command line and the
same four output files. Only the randomisation differs.

Why: `dump.py` draws every weight with a fixed standard deviation of 0.02 and treats the local MHRA's BatchNorm
weight (`...lmhra*.pos_embed.0.weight`) as a plain 1-D parameter (0.1 x noise), so at tiny sizes the local MHRA
branch and its BatchNorm statistics move the outputs by less than 1e-5 and a parity test cannot see a wrong
BatchNorm or a dropped position encoding. Here:

  linear / conv weights (ndim >= 2)     N(0, 1) / sqrt(fan_in), fan_in = weight[0].numel()
                                        (kernel size for depthwise convs)
  biases (other 1-D parameters)         0.1 * N(0, 1)
  LayerNorm / BatchNorm weight          1 + 0.2 * N(0, 1)
  LayerNorm / BatchNorm bias            0.1 * N(0, 1)
  BatchNorm running_mean                0.5 * N(0, 1)
  BatchNorm running_var                 U[0.5, 2.0]
  balance                               N(0, 1)
  temporal_cls_token, class_embedding,
  positional_embedding                  0.5 * N(0, 1)

Example (from the repository root):

  /tmp/uniformerv2-ref/bin/python scripts/make_mmaction2_fixture.py \\
      --config uniformerv2-base-p16-res224_clip_8xb32-u8_kinetics400-rgb.py \\
      --set backbone.width=32 backbone.layers=3 ... cls_head.num_classes=10 \\
      --frames 8 --size 28 --views 2 --batch 2 --seed 7 --out tests/fixtures/mmaction2/lmhra_sensitive

Writes into --out (same structure as dump.py):
  checkpoint.pth  {'state_dict': <Recognizer3D state dict>, 'meta': {'mmaction_config', 'overrides'}}
  input.pt        raw frames, float32 in [0, 255], shape [batch, views, 3, frames, size, size]
  outputs.pt      {'features': [batch*views, C], 'cls_score': [batch*views, K], 'scores': [batch, K]}
  meta.json       the command, package versions, the resolved model config and the output shapes
"""

import argparse
import importlib.util
import json
import os
import sys

import torch
from torch import nn

DEFAULT_DUMP_PY = "/work/shared/ref/dump.py"
EMBEDDINGS = ("temporal_cls_token", "class_embedding", "positional_embedding")


def load_dump(path):
    """Import the shared oracle script as a module (its `main` is not run)."""
    spec = importlib.util.spec_from_file_location("dump", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def randomise(model, seed):
    """Overwrite every parameter and BatchNorm statistic with seeded noise scaled so that every branch matters."""
    norm_types = (nn.LayerNorm, nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)
    norm_params = set()
    for m_name, m in model.named_modules():
        if isinstance(m, norm_types):
            prefix = f"{m_name}." if m_name else ""
            norm_params.update({prefix + "weight", prefix + "bias"})
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            noise = torch.randn(p.shape, generator=gen)
            leaf = name.rsplit(".", 1)[-1]
            if name in norm_params:
                p.copy_(1.0 + 0.2 * noise if leaf == "weight" else 0.1 * noise)
            elif leaf == "balance":
                p.copy_(noise)
            elif leaf in EMBEDDINGS:
                p.copy_(0.5 * noise)
            elif p.ndim >= 2:
                p.copy_(noise / p[0].numel() ** 0.5)
            elif leaf.endswith("bias"):
                p.copy_(0.1 * noise)
            else:
                raise ValueError(f"no randomisation rule for parameter {name} {tuple(p.shape)}")
        for name, b in model.named_buffers():
            if name.endswith("running_mean"):
                b.copy_(0.5 * torch.randn(b.shape, generator=gen))
            elif name.endswith("running_var"):
                b.copy_(0.5 + 1.5 * torch.rand(b.shape, generator=gen))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dump-py", default=DEFAULT_DUMP_PY, help="the shared oracle script (default %(default)s)")
    ap.add_argument("--config", required=True)
    ap.add_argument("--set", nargs="*", default=[], help="model config overrides, key=value (python literal)")
    ap.add_argument("--frames", type=int, default=8)
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--views", type=int, default=1, help="clips x crops per sample")
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    dump = load_dump(args.dump_py)

    # From here on as dump.py's main(), with this file's randomise().
    torch.manual_seed(args.seed)
    model, model_cfg = dump.build(dump.config_path(args.config), args.set)
    randomise(model, args.seed)
    model.eval()

    gen = torch.Generator().manual_seed(args.seed + 1)
    raw = torch.rand((args.batch, args.views, 3, args.frames, args.size, args.size), generator=gen) * 255
    from mmaction.structures import ActionDataSample

    with torch.no_grad():
        data = dict(inputs=[x for x in raw], data_samples=[ActionDataSample() for _ in range(args.batch)])
        data = model.data_preprocessor(data, training=False)
        inputs = data["inputs"]  # [B, V, 3, T, H, W], normalised
        feats = model.backbone(inputs.reshape((-1,) + inputs.shape[2:]))
        cls_score = model.cls_head(feats)
        preds = model.predict(inputs, data["data_samples"])
        scores = torch.stack([p.pred_score for p in preds])
    expected = {"features": args.batch * args.views, "cls_score": args.batch * args.views, "scores": args.batch}
    got = {"features": feats.shape[0], "cls_score": cls_score.shape[0], "scores": scores.shape[0]}
    if got != expected:
        sys.exit(
            f"unexpected leading output sizes {got} (expected {expected}); with temporal_downsample, "
            "backbone.t_size must be the input frame count (MMAction2 halves it)"
        )

    os.makedirs(args.out, exist_ok=True)
    torch.save(
        {
            "state_dict": model.state_dict(),
            "meta": {"mmaction_config": os.path.basename(args.config), "overrides": args.set},
        },
        os.path.join(args.out, "checkpoint.pth"),
    )
    torch.save(raw, os.path.join(args.out, "input.pt"))
    torch.save({"features": feats, "cls_score": cls_score, "scores": scores}, os.path.join(args.out, "outputs.pt"))
    import mmaction
    import mmcv
    import mmengine

    meta = {
        "command": " ".join(sys.argv),
        "torch": torch.__version__,
        "mmaction2": mmaction.__version__,
        "mmcv": mmcv.__version__,
        "mmengine": mmengine.__version__,
        "model": model_cfg.to_dict(),
        "shapes": {
            "input": list(raw.shape),
            "features": list(feats.shape),
            "cls_score": list(cls_score.shape),
            "scores": list(scores.shape),
        },
    }
    with open(os.path.join(args.out, "meta.json"), "w") as f:
        json.dump(meta, f, indent=1, default=str)
    print(json.dumps(meta["shapes"]))


if __name__ == "__main__":
    main()
