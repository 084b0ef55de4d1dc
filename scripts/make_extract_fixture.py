"""Golden fixture for `uniformerv2 extract --mode video`: MMAction2 1.2.0's own feature extractor on real videos.

Run with the reference environment's Python (see /work/shared/ref/setup.sh), never the project's, from the
repository root:

  /tmp/uniformerv2-ref/bin/python scripts/make_extract_fixture.py --out tests/fixtures/extract

What it does:

1. Builds MMAction2's Recognizer3D from one of its UniFormerV2 configs shrunk by `--set` overrides, exactly as the
   shared oracle `/work/shared/ref/dump.py` does (its `build` and `config_path` are imported), randomises it with
   `scripts/make_mmaction2_fixture.py`'s `randomise` (fan-in scaled, so every branch moves the output), and saves
   `checkpoint.pth` in dump.py's layout ({'state_dict', 'meta'}).
2. Runs MMAction2's shipped tool `mmaction/.mim/tools/misc/clip_feature_extraction.py` unchanged, as a subprocess,
   on that config and checkpoint, with `--cfg-options` that shrink the same architecture and the test pipeline's
   clip length, resize and crop to the tiny model, and run the data loader in the main process (offline: no CLIP
   download, `clip_pretrained=False`). With a UniFormerV2 config the tool keeps the test pipeline's views
   (`UniformSample` num_clips and `ThreeCrop` are left alone; it only rewrites `SampleFrames` and `TenCrop`),
   replaces the head with `FeatureHead` (the backbone's [N, C] output passes through) and averages the views with
   `average_clips='score'`: one vector per video, the mean over clips x crops of the backbone feature.
3. Converts the tool's per-video pickles (`<prefix>/<video>.pkl`, torch tensors [C]) to `<video>.npy` (float32)
   and writes `videos.txt` (the list given to the tool) and `meta.json` (the commands, versions and the resolved
   pipeline).
"""

import argparse
import hashlib
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_DUMP_PY = "/work/shared/ref/dump.py"
CONFIG = "uniformerv2-base-p16-res224_clip_8xb32-u8_kinetics400-rgb.py"
ARCH = dict(
    width=32,
    layers=3,
    heads=2,
    n_dim=32,
    n_head=2,
    return_list=[1, 2],
    n_layers=2,
    mlp_dropout=[0.5, 0.5],
    input_resolution=64,
    patch_size=16,
    t_size=8,
    no_lmhra=False,
    double_lmhra=True,
)
NUM_CLASSES = 10


def load_module(name, path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def literal(value):
    return str(value).replace(" ", "")


def sha256(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dump-py", default=DEFAULT_DUMP_PY, help="the shared oracle script (default %(default)s)")
    ap.add_argument("--videos", default="/work/shared/data/videos", help="folder of the shared videos")
    ap.add_argument("--names", nargs="+", default=["test.mp4", "demo.mp4"], help="videos in --videos")
    ap.add_argument("--size", type=int, default=ARCH["input_resolution"], help="crop size (the model input)")
    ap.add_argument("--frames", type=int, default=ARCH["t_size"], help="frames per clip")
    ap.add_argument("--seed", type=int, default=11)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()

    dump = load_module("dump", args.dump_py)
    fixture = load_module("make_mmaction2_fixture", os.path.join(HERE, "make_mmaction2_fixture.py"))
    config = dump.config_path(CONFIG)
    arch = dict(ARCH, input_resolution=args.size, t_size=args.frames)
    overrides = [f"backbone.{k}={literal(v)}" for k, v in arch.items()]
    overrides += [f"cls_head.in_channels={arch['n_dim']}", f"cls_head.num_classes={NUM_CLASSES}"]

    torch.manual_seed(args.seed)
    model, model_cfg = dump.build(config, overrides)
    fixture.randomise(model, args.seed)
    model.eval()
    os.makedirs(args.out, exist_ok=True)
    ckpt = os.path.join(args.out, "checkpoint.pth")
    torch.save(
        {
            "state_dict": model.state_dict(),
            "meta": {"mmaction_config": os.path.basename(config), "overrides": overrides},
        },
        ckpt,
    )

    import mmaction

    tool = os.path.join(os.path.dirname(mmaction.__file__), ".mim", "tools", "misc", "clip_feature_extraction.py")
    work = tempfile.mkdtemp(prefix="extract-fixture-")
    try:
        video_list = os.path.join(args.out, "videos.txt")
        with open(video_list, "w") as f:
            f.write("".join(f"{name}\n" for name in args.names))
        prefix = os.path.join(work, "feats")
        cfg_options = [f"model.backbone.{k}={literal(v)}" for k, v in arch.items()]
        cfg_options += [
            "model.backbone.clip_pretrained=False",
            f"test_dataloader.dataset.pipeline.1.clip_len={args.frames}",
            f"test_dataloader.dataset.pipeline.3.scale=(-1,{args.size})",
            f"test_dataloader.dataset.pipeline.4.crop_size={args.size}",
            "test_dataloader.num_workers=0",
            "test_dataloader.persistent_workers=False",
        ]
        command = [
            sys.executable,
            tool,
            config,
            os.path.abspath(ckpt),
            prefix,
            "--video-list",
            os.path.abspath(video_list),
            "--video-root",
            args.videos,
            "--cfg-options",
            *cfg_options,
        ]
        print(" ".join(command), flush=True)
        subprocess.run(command, check=True, cwd=work)
        shapes = {}
        for name in args.names:
            from mmengine import load

            feat = load(os.path.join(prefix, name + ".pkl"))  # the tool writes them with mmengine.dump (pickle)
            feat = feat.detach().float().cpu().numpy() if isinstance(feat, torch.Tensor) else np.asarray(feat)
            np.save(os.path.join(args.out, name + ".npy"), feat.astype(np.float32))
            shapes[name] = list(feat.shape)
        from mmengine.config import Config

        cfg = Config.fromfile(config)
        import mmcv
        import mmengine

        meta = {
            "command": " ".join(sys.argv),
            "tool": os.path.relpath(tool, os.path.dirname(os.path.dirname(mmaction.__file__))),
            "tool_sha256": sha256(tool),
            "tool_command": command,
            "config": os.path.basename(config),
            "checkpoint_overrides": overrides,
            "cfg_options": cfg_options,
            "original_test_pipeline": cfg.test_dataloader.dataset.pipeline,
            "seed": args.seed,
            "videos": args.names,
            "shapes": shapes,
            "torch": torch.__version__,
            "mmaction2": mmaction.__version__,
            "mmcv": mmcv.__version__,
            "mmengine": mmengine.__version__,
            "model": model_cfg.to_dict(),
        }
        with open(os.path.join(args.out, "meta.json"), "w") as f:
            json.dump(meta, f, indent=1, default=str)
        print(json.dumps(shapes))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
