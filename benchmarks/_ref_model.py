"""Benchmark worker for MMAction2 1.2.0's UniFormerV2 recognizer (the reference), run by ``bench_model.py``.

Run with the oracle environment's Python (``../shared/ref/setup.sh``), never the project's:

    /tmp/uniformerv2-ref/bin/python benchmarks/_ref_model.py --config NAME.py --views 1 --frames 8 --size 224 \\
        --dtype fp32 --save-checkpoint /tmp/ref.pth

Builds the ``Recognizer3D`` from MMAction2's config exactly as ``../shared/ref/dump.py`` does (every parameter
and BatchNorm statistic randomised from ``--seed``), optionally saves its checkpoint (so our model loads the same
weights), then answers one JSON line per command read from stdin:

    run           time one forward ``cls_head(backbone(x))`` of the normalised views (no grad, optional bf16 autocast;
                  under torch.compile with freezing when ``--compile`` is given)
    logits PATH   save the last run's logits to PATH
    quit          report the peak memory since the model was built (VmHWM; on CUDA, max allocated) and exit
"""

import argparse
import os
import sys

import torch

from _measure import serve


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", required=True)
    ap.add_argument("--shared", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared"))
    ap.add_argument("--views", type=int, default=1)
    ap.add_argument("--frames", type=int, default=8)
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--dtype", choices=["fp32", "bf16"], default="fp32")
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--save-checkpoint")
    ap.add_argument("--device", default="cpu")
    ap.add_argument(
        "--compile",
        action="store_true",
        help="through uniformerv2.compile_for_inference (torch.compile with inductor freezing)",
    )
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    sys.path.insert(0, os.path.join(args.shared, "ref"))
    # The recognizer needs none of MMAction2's multimodal models, and their import fails under transformers >= 5
    # (as installed on the GPU machines): skip them, as MMAction2 does when transformers is absent.
    import mmaction.utils.dependency

    mmaction.utils.dependency.WITH_MULTIMODAL = False
    import logging

    import dump  # the oracle's builder: MMAction2 config -> Recognizer3D, randomised weights

    logging.getLogger("mmengine").setLevel(logging.WARNING)

    torch.manual_seed(args.seed)
    model, _ = dump.build(dump.config_path(args.config), [])
    dump.randomise(model, args.seed)
    model.eval()
    device = torch.device(args.device)
    if args.save_checkpoint:
        torch.save({"state_dict": model.state_dict()}, args.save_checkpoint)
    gen = torch.Generator().manual_seed(args.seed + 1)
    x = torch.randn((args.views, 3, args.frames, args.size, args.size), generator=gen)  # normalised views
    model.to(device)
    x = x.to(device)

    recognise = torch.nn.Sequential(model.backbone, model.cls_head)  # cls_head(backbone(x))
    if args.compile:  # the very function ours uses (inductor freezing), from the project's source tree
        sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src"))
        from uniformerv2.precision import compile_for_inference

        run = compile_for_inference(recognise)
    else:
        run = recognise

    def forward() -> torch.Tensor:
        with torch.no_grad(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=args.dtype == "bf16"):
            return run(x)

    serve(forward, device)


if __name__ == "__main__":
    main()
