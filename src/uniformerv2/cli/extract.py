"""``uniformerv2 extract``: video features for downstream work (retrieval, probing, temporal action localisation)."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from ..duration import Duration
from ._common import (
    add_batch_arguments,
    add_model_arguments,
    alias,
    command,
    duration,
    exit_status,
    model_source,
    parse_overrides,
    positive_float,
    positive_int,
    views,
    warn,
)

EXAMPLES = [
    "uniformerv2 extract --ann-file k400_val.txt --data-root val/ --out-dir feats/ --model "
    "uniformerv2-base-p16-res224_clip-kinetics710-pre_8xb32-u8_kinetics400-rgb --checkpoint k400_b16.pth",
    "uniformerv2 extract videos/ --out-dir thumos_feats/ --checkpoint model.safetensors --mode windows "
    "--window 16f --stride 4f --fps 30",
    "torchrun --nproc-per-node 4 -m uniformerv2.cli extract videos/ --out-dir feats/ --model PRESET "
    "--format safetensors",
]


_WINDOW, _STRIDE = Duration(16, "f"), Duration(4, "f")  # the windows extract has always cut by default


class _Length(argparse.Action):
    """``--window``/``--stride``: a duration (:func:`._common.duration`: ``16f`` frames, ``2s`` or a bare ``2``
    seconds). A bare number meant frames to extract before every command read it as seconds: each one given
    prints a note saying so."""

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: Any,
        option_string: str | None = None,
    ) -> None:
        try:
            value = duration(values)
        except argparse.ArgumentTypeError as e:
            raise argparse.ArgumentError(self, str(e)) from None
        text = str(values).strip()
        if not text.lower().endswith(("s", "f")):  # no unit: seconds
            frames = f"{text}f" if float(text).is_integer() else "a whole number of frames with f (16f)"
            print(
                f"note: {option_string} {text} is {text} seconds (a bare number is seconds in every command); "
                f"write {frames} for frames",
                file=sys.stderr,
            )
        setattr(namespace, self.dest, value)


def register(sub: Any) -> None:
    from ..features import FEATURE_KINDS, FORMATS, MODES

    p = command(
        sub,
        "extract",
        help="extract video features into one file per video, with a manifest",
        description="Extract features of many videos: one file per video under its relative path, "
        "manifest.csv/.json listing every video (status, shape, fps, frames, windows, model "
        "and checkpoint sha256). --mode video gives one vector per video, the mean over the "
        "test views (what MMAction2's clip_feature_extraction.py returns); --mode windows one "
        "row per sliding window, for temporal action localisation. Rerunning the same command "
        "resumes: finished videos are skipped. Videos that cannot be decoded are listed and "
        "skipped (exit status 3). Runs under torchrun (videos are split across processes).",
        examples=EXAMPLES,
    )
    p.add_argument(
        "inputs", nargs="*", metavar="VIDEO|DIR", help="video files, folders (searched recursively) or globs"
    )
    p.add_argument("--ann-file", help="annotation list, one 'path [label]' per line (MMAction2's VideoDataset)")
    p.add_argument("--data-root", default="", help="directory the annotation paths are relative to")
    p.add_argument("--out-dir", required=True, help="where the feature files and the manifest go")
    add_model_arguments(p)
    p.add_argument(
        "--kind",
        choices=FEATURE_KINDS,
        default="pooled",
        help="pooled: the fused feature the classifier sees (default); video-token: the last global "
        "block's token before the fusion; frame-cls: every frame's class token after the last local "
        "block [T, C]; patch-mean: that block's patch tokens averaged over space [T, C]; logits; "
        "probs",
    )
    p.add_argument(
        "--mode",
        choices=MODES,
        default="video",
        help="video: one vector per video, averaged over the test views (default); windows: one per sliding window",
    )
    p.add_argument(
        "--views",
        type=views,
        metavar="CLIPSxCROPS",
        help="--mode video: views averaged, e.g. 4x3 (default: the model's protocol)",
    )
    p.add_argument("--frames", type=positive_int, help="frames sampled per clip or window (default: the model's)")
    p.add_argument(
        "--window",
        action=_Length,
        default=_WINDOW,
        metavar="DURATION",
        help="--mode windows: window length in frames (16f) or seconds (2s; a bare number is seconds) "
        f"(default {_WINDOW})",
    )
    p.add_argument(
        "--stride",
        action=_Length,
        default=_STRIDE,
        metavar="DURATION",
        help=f"--mode windows: step between window starts, frames (4f) or seconds (default {_STRIDE})",
    )
    p.add_argument(
        "--fps",
        type=positive_float,
        help="--mode windows: resample time to this frame rate first (frame k is "
        "the one shown at k/fps s), as localisation pipelines expect; window "
        "and stride in frames then count these frames (default: the video's "
        "own frames)",
    )
    p.add_argument(
        "--crops",
        type=int,
        choices=[1, 3],
        default=1,
        help="--mode windows: crops per window, their features averaged (default 1, the centre)",
    )
    p.add_argument(
        "--align-end",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="--mode windows: a last window that ends with the video, off the stride grid, so no frame is left "
        "out (the default, as in timeline); --no-align-end keeps a strictly regular grid",
    )
    alias(p, "--cover-end", dest="align_end", action="store_true")
    p.add_argument(
        "--format",
        choices=FORMATS,
        default="npy",
        help="npy (default): the features array; safetensors: features plus, in windows mode, the "
        "windows' times and frames",
    )
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="redo every video (default: skip videos whose files the manifest records as complete)",
    )
    p.add_argument(
        "--backend", choices=["pyav", "decord", "torchcodec"], default="pyav", help="video decoder (default pyav)"
    )
    add_batch_arguments(p, "DataLoader worker processes decoding videos (default: min(4, CPUs))")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..engine import distributed as D
    from ..factory import create_model
    from ..features import WindowSpec, assign_outputs, collect_videos, extract

    name, checkpoint = model_source(args)
    jobs = assign_outputs(collect_videos(args.inputs, ann_file=args.ann_file, data_root=args.data_root), args.format)
    spec = None
    ignored = (["--views"] if args.mode == "windows" and args.views else []) + (
        [
            flag
            for flag, given in (
                ("--fps", args.fps),
                ("--crops", args.crops != 1),
                ("--no-align-end", not args.align_end),
                ("--window", args.window != _WINDOW),
                ("--stride", args.stride != _STRIDE),
            )
            if given
        ]
        if args.mode == "video"
        else []
    )
    if ignored:
        warn(
            "extract",
            f"{', '.join(ignored)} {'has' if len(ignored) == 1 else 'have'} no effect with --mode {args.mode}",
        )
    if args.mode == "windows":
        spec = WindowSpec(
            window=args.window, stride=args.stride, fps=args.fps, crops=args.crops, align_end=args.align_end
        )

    def on_failure(path: str, reason: str) -> None:
        from tqdm.auto import tqdm

        tqdm.write(f"failed: {path}: {reason}", file=sys.stderr)

    device = D.init_distributed(args.device)
    try:
        with D.main_process_first():
            model = create_model(
                name,
                checkpoint=checkpoint,
                pretrained=checkpoint is None,
                progress=D.is_main_process(),
                **parse_overrides(args.set),
            )
        clips, crops = args.views or (None, None)
        protocol = model.pretrained_cfg.protocol.replace(frames=args.frames, clips=clips, crops=crops)
        result = extract(
            model,
            jobs,
            args.out_dir,
            mode=args.mode,
            kind=args.kind,
            protocol=protocol,
            windows=spec,
            fmt=args.format,
            batch_views=args.batch_views,
            workers=min(4, os.cpu_count() or 1) if args.workers is None else max(0, args.workers),
            device=device,
            dtype=args.dtype,
            compile=args.compile,
            backend=args.backend,
            overwrite=args.overwrite,
            progress=not args.no_progress,
            on_failure=on_failure,
        )
    finally:
        D.destroy_distributed()
    distributed = D.is_distributed()
    status = exit_status(result.num_ok, len(result.failures))
    if D.is_main_process():
        skipped = f", {len(result.skipped)} already done" if result.skipped else ""
        print(
            f"extracted {len(result.done)} of {result.num_videos} videos{skipped}, {len(result.failures)} failed "
            f"({args.mode} mode, {args.kind} features) into {args.out_dir}"
        )
        for path in result.manifest:
            print(f"wrote {path}")
        if result.failures:
            print(
                f"uniformerv2 extract: {len(result.failures)} of {result.num_videos} videos failed (listed above "
                "and in the manifest); the features of the others are written",
                file=sys.stderr,
            )
    # torchrun turns any non-zero exit of a rank into its own failure: a partial result under torchrun exits 0
    return 0 if distributed and status == 3 else status
