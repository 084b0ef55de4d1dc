"""Shared test helpers: tiny architectures (tests never build the big presets with real weights), the demo's lamp
videos as a dataset, and where the fixtures and the shared data are. Fixtures live in conftest.py."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import torch

from uniformerv2.model import UniFormerV2, UniFormerV2Config

FIXTURES = Path(__file__).parent / "fixtures"


def _find_shared() -> Path:
    """The project's shared data (videos, label maps): $UNIFORMERV2_SHARED, or a `shared/` beside the checkout."""
    if os.environ.get("UNIFORMERV2_SHARED"):
        return Path(os.environ["UNIFORMERV2_SHARED"])
    root = Path(__file__).resolve().parents[1]
    for candidate in (root.parent / "shared", Path("/work/shared")):
        if (candidate / "data").is_dir():
            return candidate
    return root.parent / "shared"


SHARED = _find_shared()


def tiny_config(**overrides) -> UniFormerV2Config:
    base = dict(
        width=32,
        layers=3,
        heads=2,
        n_dim=32,
        n_head=2,
        return_list=(1, 2),
        n_layers=2,
        mlp_dropout=(0.5, 0.5),
        input_resolution=32,
        patch_size=16,
        t_size=4,
        num_classes=5,
    )
    base.update(overrides)
    return UniFormerV2Config(**base)


def randomised(model: UniFormerV2, seed: int = 0) -> UniFormerV2:
    """Give every parameter and BatchNorm statistic random values, so zero-initialised parts matter too."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for _, p in model.named_parameters():
            p.copy_(0.1 * torch.randn(p.shape, generator=gen))
        for name, b in model.named_buffers():
            if name.endswith("running_var"):
                b.copy_(1.0 + 0.5 * torch.rand(b.shape, generator=gen))
            elif name.endswith("running_mean"):
                b.copy_(0.1 * torch.randn(b.shape, generator=gen))
    return model.eval()


def write_lamp_dataset(
    root: Path, *, classes: int, per_class: int, frames: int, height: int, width: int, seed: int = 0
) -> Path:
    """Real H.264 videos of the demo's lamp task, ``train.txt`` listing all of them and ``val.txt`` every third."""
    import numpy as np

    from uniformerv2.demo import make_lamp_video, write_video  # the demo's task is the tests' data

    lines = []
    for label in range(classes):
        for k in range(per_class):
            rel = f"c{label}/{k}.mp4"
            write_video(
                root / rel,
                make_lamp_video(
                    label, np.random.default_rng([seed, label, k]), frames=frames, height=height, width=width
                ),
            )
            lines.append(f"{rel} {label}")
    (root / "train.txt").write_text("\n".join(lines) + "\n")
    (root / "val.txt").write_text("\n".join(lines[::3]) + "\n")
    return root


def openmmlab_name(data: bytes, stem: str = "uniformerv2-test") -> str:
    """Name a file the OpenMMLab way, with the real sha256 prefix of ``data``."""
    return f"{stem}_20230313-{hashlib.sha256(data).hexdigest()[:8]}.pth"


# Training tests: no dropout and no BatchNorm (the local MHRA's) unless a test asks, so runs are comparable.
TINY_TRAIN = dict(
    input_resolution=16,
    patch_size=8,
    width=32,
    layers=2,
    heads=2,
    t_size=4,
    return_list=(1,),
    n_layers=1,
    n_dim=32,
    n_head=2,
    mlp_dropout=(0.0,),
    no_lmhra=True,
)
PRESET = "uniformerv2-base-p16-res224_clip_8xb32-u8_kinetics400-rgb"  # any preset: the architecture is overridden


def train_config(videos: Path, work_dir: Path, *, arch: dict | None = None, **kw):
    """A TrainConfig for a tiny model on ``videos/train.txt`` (random init, CPU, no progress bars)."""
    from uniformerv2.engine.config import TrainConfig

    base = dict(
        model=PRESET,
        init="none",
        model_overrides=dict(TINY_TRAIN, **(arch or {})),
        dropout_ratio=0.0,
        ann_file=str(videos / "train.txt"),
        data_root=str(videos),
        frames=4,
        size=16,
        short_side=16,
        epochs=2,
        lr=1e-3,
        workers=0,
        work_dir=str(work_dir),
        device="cpu",
        progress=False,
    )
    return TrainConfig(**{**base, **kw})


def write_frames(path: Path, frames, *, fps: int = 10, times=None) -> Path:
    """H.264 MP4 of uint8 RGB ``frames`` [T, H, W, 3]; ``times`` (seconds per frame) makes a variable frame rate."""
    from fractions import Fraction

    import av

    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
        stream.options = {"crf": "10", "preset": "ultrafast"}
        if times is not None:
            stream.codec_context.time_base = Fraction(1, 1000)
        for i, f in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(f, format="rgb24")
            if times is not None:
                frame.pts, frame.time_base = int(round(times[i] * 1000)), Fraction(1, 1000)
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def set_display_rotation(path: Path, clockwise_degrees: int) -> Path:
    """Give an MP4 the display matrix a phone writes for a video to be shown turned ``clockwise_degrees`` (90, 180,
    270): the 3x3 matrix of the track header (``tkhd``), as ``ffmpeg -display_rotation`` and phones write it."""
    import struct

    one, matrices = 1 << 16, {90: (0, 1, -1, 0), 180: (-1, 0, 0, -1), 270: (0, -1, 1, 0)}
    a, b, c, d = (v * one for v in matrices[clockwise_degrees])
    data = bytearray(path.read_bytes())
    at = data.find(b"tkhd") + 44  # type, version/flags, times, track id, duration, layer, group, volume
    data[at : at + 36] = struct.pack(">9i", a, b, 0, c, d, 0, 0, 0, 1 << 30)
    path.write_bytes(bytes(data))
    return path


def portrait_frames(frames: int = 4, height: int = 48, width: int = 32):
    """uint8 frames with a bright block in the top-left corner, so any turn or flip shows."""
    import numpy as np

    out = np.full((frames, height, width, 3), 40, np.uint8)
    out[:, : height // 4, : width // 3] = 230
    out[:, -4:, :, 2] = 200
    return out
