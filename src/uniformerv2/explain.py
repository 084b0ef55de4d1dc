"""Where and when the model looks: Grad-CAM on a local block's patch tokens, and the global UniBlocks' video-token
attention over each frame's patches, on one test view, drawn back onto the full frames.

Both read the network through hooks that only look: the logits of an explained forward equal the model's.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from .data.decode import open_video, rewrite_video
from .data.transforms import normalize, rescale_size
from .data.views import sample_test_indices, view_crop_boxes, views_from_frames
from .errors import UsageError
from .model import GlobalUniBlock, UniFormerV2
from .precision import autocast
from .protocol import Protocol

__all__ = [
    "METHODS",
    "Explanation",
    "gradcam",
    "attention_maps",
    "explain_video",
    "write_overlay_video",
    "write_explanation",
    "deletion_test",
]

METHODS = ("gradcam", "attention", "both")


def _grid(model: UniFormerV2) -> int:
    return model.cfg.input_resolution // model.cfg.patch_size


def _to_input_size(maps: Tensor, frames: int, size: int) -> Tensor:
    """Token maps [N, T', g, g] -> [N, frames, size, size] (trilinear: also undoes temporal downsampling)."""
    return F.interpolate(
        maps.unsqueeze(1).float(), size=(frames, size, size), mode="trilinear", align_corners=False
    ).squeeze(1)


def gradcam(
    model: UniFormerV2, x: Tensor, target: int | Sequence[int], *, block: int = -1, dtype: torch.dtype | None = None
) -> tuple[Tensor, Tensor]:
    """Grad-CAM of class ``target`` on the patch tokens of local block ``block``: one weight per channel (the
    gradient's mean over the clip's frames and patches), the ReLU of the weighted tokens, per frame.

    ``x``: normalised views [N, 3, T, S, S]. Returns (maps [N, T, S, S] in [0, 1] at input resolution, logits
    [N, classes]); the logits are the model's own.
    """
    blocks = model.backbone.transformer.resblocks
    if not -len(blocks) <= block < len(blocks):
        raise UsageError(f"--block {block}: the model has local blocks 0..{len(blocks) - 1}")
    kept: dict[str, Tensor] = {}

    def keep(_module: Any, _inputs: Any, output: Tensor) -> None:
        output.retain_grad()
        kept["tokens"] = output

    model.eval()
    handle = blocks[block].register_forward_hook(keep)
    try:
        with torch.enable_grad(), autocast(x.device, dtype):
            inputs = x.detach().requires_grad_(False)
            logits = model(inputs)
            targets = torch.as_tensor(target, device=logits.device).expand(logits.shape[0])
            logits.gather(1, targets[:, None]).sum().backward()
    finally:
        handle.remove()
        model.zero_grad(set_to_none=True)
    tokens = kept["tokens"]  # [N*T', 1+g*g, C]
    n, g = x.shape[0], _grid(model)
    t = tokens.shape[0] // n
    acts = tokens.detach()[:, 1:].float().reshape(n, t, g * g, -1)  # [N, T', g*g, C]
    assert tokens.grad is not None  # the backward pass reached the hooked block's output
    grads = tokens.grad[:, 1:].float().reshape(n, t, g * g, -1)
    weights = grads.mean(dim=(1, 2), keepdim=True)  # [N, 1, 1, C]
    cam = F.relu((acts * weights).sum(-1)).reshape(n, t, g, g)
    cam = _to_input_size(cam, x.shape[2], x.shape[-1])
    peak = cam.flatten(1).amax(1).clamp_min(1e-12)
    return cam / peak[:, None, None, None], logits.detach().float()


@torch.no_grad()
def attention_maps(model: UniFormerV2, x: Tensor, *, dtype: torch.dtype | None = None) -> tuple[Tensor, Tensor]:
    """Where each global UniBlock's video token attends: its cross-attention weights (averaged over heads) on every
    frame's patch tokens. Returns (maps [blocks, N, T, S, S] at input resolution -- a block's weights over the
    clip's patches sum to at most 1, the rest is on the frames' class tokens -- and the logits [N, classes])."""
    inputs: list[tuple[Tensor, Tensor]] = []
    handles = [
        b.register_forward_pre_hook(lambda _m, args: inputs.append((args[0], args[1])))
        for b in model.backbone.transformer.dec
    ]
    model.eval()
    try:
        with autocast(x.device, dtype):
            logits = model(x).float()
    finally:
        for h in handles:
            h.remove()
    n, g = x.shape[0], _grid(model)
    maps = []
    for block, (token, keys) in zip(model.backbone.transformer.dec, inputs):
        assert isinstance(block, GlobalUniBlock)  # dec is a ModuleList of them; iterating it yields Module
        attn = block.attn
        c = token.shape[-1]
        w_q, w_k, _ = attn.in_proj_weight.float().split(c)
        b_q, b_k, _ = attn.in_proj_bias.float().split(c)
        q = F.linear(block.ln_1(token.float()), w_q, b_q).view(n, 1, attn.num_heads, attn.head_dim)
        k = F.linear(block.ln_3(keys.float()), w_k, b_k).view(n, -1, attn.num_heads, attn.head_dim)
        weights = torch.einsum("nqhd,nkhd->nhqk", q, k).mul(attn.head_dim**-0.5).softmax(-1)  # [N, h, 1, L]
        weights = weights.mean(1)[:, 0]  # [N, L]: the video token's attention, averaged over heads
        t = weights.shape[1] // (1 + g * g)
        patches = weights.view(n, t, 1 + g * g)[:, :, 1:].reshape(n, t, g, g)  # the class-token keys left out
        # spread each token's weight over its patch's pixels, so a map's sum stays the weight on the clip
        maps.append(_to_input_size(patches, x.shape[2], x.shape[-1]) * t / x.shape[2] / (x.shape[-1] / g) ** 2)
    return torch.stack(maps), logits


@dataclass
class Explanation:
    """The explained test view of a video: its frames, the maps at input resolution, and where it lies."""

    video: str
    target: int
    target_name: str
    probability: float
    indices: np.ndarray  # [T] frame indices of the view
    frames: np.ndarray  # uint8 [T, S, S, 3], the view as the model saw it
    crop_box: tuple[int, int, int, int]  # (x1, y1, x2, y2) on the frames resized to short side S
    resized: tuple[int, int]  # (height, width) of the resized frames
    maps: dict[str, np.ndarray] = field(default_factory=dict)  # "gradcam" [T, S, S]; "attention" [T, S, S]
    attention_blocks: np.ndarray | None = None  # [blocks, T, S, S]

    def frame_contributions(self) -> dict[str, np.ndarray]:
        """Each method's share of its map on each frame [T] (sums to 1)."""
        out = {}
        for name, m in self.maps.items():
            mass = m.reshape(m.shape[0], -1).sum(1)
            out[name] = mass / max(float(mass.sum()), 1e-12)
        return out


def explain_video(
    model: UniFormerV2,
    video: str | os.PathLike,
    *,
    protocol: Protocol,
    target: int | str | None = None,
    class_names: Sequence[str] | None = None,
    method: str = "both",
    block: int = -1,
    device: str | torch.device = "cpu",
    dtype: torch.dtype | None = None,
    backend: str = "pyav",
) -> Explanation:
    """Explain the centre test view (one clip, the centre crop) of ``video``: ``target`` a class index or name
    (default: the predicted class), ``method`` gradcam, attention or both."""
    if method not in METHODS:
        raise UsageError(f"unknown method {method!r}; choose one of {', '.join(METHODS)}")
    view = protocol.replace(clips=1, crops=1)
    with open_video(video, backend) as reader:
        indices = sample_test_indices(reader.num_frames, view)
        frames = reader.read(indices)  # [T, H, W, 3]
    h, w = frames.shape[1:3]
    if view.sampling == "mmaction2":
        resized = rescale_size(h, w, view.size)
    else:  # the original code floors the long side (see data.transforms.resize_short_side_original)
        resized = (view.size, int(w / h * view.size)) if h <= w else (int(h / w * view.size), view.size)
    box = view_crop_boxes(resized[0], resized[1], 1, view.size, view.sampling)[0]
    views = views_from_frames(frames, view)  # uint8 [1, 3, T, S, S]
    x = normalize(views).to(device)
    model = model.to(device).eval()
    with torch.no_grad(), autocast(device, dtype):
        probs = model(x).float().softmax(-1)[0]
    names = list(class_names) if class_names is not None else [str(i) for i in range(model.num_classes)]
    if target is None:
        target = int(probs.argmax())
    elif isinstance(target, str):
        if target not in names:
            import difflib

            close = difflib.get_close_matches(target, names, n=3)
            raise UsageError(
                f"--class {target!r} is not a class of the model"
                + (f"; closest: {', '.join(repr(c) for c in close)}" if close else "")
            )
        target = names.index(target)
    out = Explanation(
        video=str(video),
        target=int(target),
        target_name=names[int(target)],
        probability=float(probs[int(target)]),
        indices=np.asarray(indices),
        frames=views[0].permute(1, 2, 3, 0).numpy(),
        crop_box=(int(box[0]), int(box[1]), int(box[2]), int(box[3])),
        resized=(int(resized[0]), int(resized[1])),
    )
    if method in ("gradcam", "both"):
        cam, _ = gradcam(model, x, int(target), block=block, dtype=dtype)
        out.maps["gradcam"] = cam[0].cpu().numpy()
    if method in ("attention", "both"):
        blocks, _ = attention_maps(model, x, dtype=dtype)
        out.attention_blocks = blocks[:, 0].cpu().numpy()
        out.maps["attention"] = out.attention_blocks.mean(0)
    return out


def _heat(m: np.ndarray) -> np.ndarray:
    """A map in [0, peak] -> RGB float [H, W, 3] in 0..255 (matplotlib's 'jet')."""
    from matplotlib import colormaps

    peak = float(np.nanmax(m)) or 1.0
    return colormaps["jet"](m / peak)[..., :3] * 255.0


def _full_frame_map(m: np.ndarray, ex: Explanation, height: int, width: int) -> np.ndarray:
    """A view map [S, S] placed back on the full frame [height, width] (NaN outside the crop the model saw)."""
    from PIL import Image

    sy, sx = height / ex.resized[0], width / ex.resized[1]
    x1, y1, x2, y2 = ex.crop_box
    left, top = int(round(x1 * sx)), int(round(y1 * sy))
    right, bottom = max(left + 1, int(round(x2 * sx))), max(top + 1, int(round(y2 * sy)))
    # Pillow defines its module-level filter names (Image.BILINEAR == Image.Resampling.BILINEAR) at import time
    # from the Resampling enum, so its type information lacks them; kept for Pillow < 9.1, which has no enum
    bilinear = Image.BILINEAR  # type: ignore[attr-defined]
    patch = np.asarray(Image.fromarray(m.astype(np.float32), mode="F").resize((right - left, bottom - top), bilinear))
    full = np.full((height, width), np.nan, np.float32)
    full[top:bottom, left:right] = patch[: height - top, : width - left]
    return full


def blend(frame: np.ndarray, m: np.ndarray, alpha: float = 0.5) -> np.ndarray:
    """uint8 RGB frame with a map drawn over it (where the map is NaN, outside the view, the frame is left alone)."""
    inside = ~np.isnan(m)
    weight = alpha * inside[..., None]
    return np.clip(frame * (1 - weight) + _heat(np.where(inside, m, 0.0)) * weight, 0, 255).astype(np.uint8)


def write_overlay_video(ex: Explanation, method: str, path: str | os.PathLike) -> Path:
    """The whole video with ``method``'s map blended over every frame, each frame taking the map of the nearest
    explained frame."""
    maps = ex.maps[method]
    peak = float(maps.max()) or 1.0
    cache: dict[int, np.ndarray] = {}
    with open_video(ex.video) as reader:
        fps = reader.fps

    def draw(rgb: np.ndarray, index: int, time_s: float) -> np.ndarray:
        k = int(np.abs(ex.indices - index).argmin())
        if k not in cache:
            cache[k] = _full_frame_map(maps[k] / peak, ex, rgb.shape[0], rgb.shape[1])
        return blend(rgb, cache[k])

    return rewrite_video(ex.video, path, draw, fps=fps)


@torch.no_grad()
def deletion_test(
    model: UniFormerV2,
    x: Tensor,
    cam: Tensor,
    target: int,
    *,
    fraction: float = 0.1,
    random_draws: int = 5,
    seed: int = 0,
) -> tuple[float, float]:
    """The drop in ``target``'s probability when the ``fraction`` of pixels (over the clip) with the highest map
    values are blanked to the mean colour, and the mean drop for as many pixels chosen at random.
    ``x`` [1, 3, T, S, S] normalised; ``cam`` [T, S, S]."""

    def prob(inputs: Tensor) -> float:
        return float(model(inputs).float().softmax(-1)[0, target])

    base = prob(x)
    count = int(round(fraction * cam.numel()))
    top = torch.zeros(cam.numel(), dtype=torch.bool)
    top[cam.flatten().topk(count).indices] = True
    blanked = x.clone()
    blanked[:, :, top.view_as(cam)] = 0.0  # 0 after normalisation is the mean colour, 114.75
    cam_drop = base - prob(blanked)
    gen = torch.Generator().manual_seed(seed)
    drops = []
    for _ in range(random_draws):
        mask = torch.zeros(cam.numel(), dtype=torch.bool)
        mask[torch.randperm(cam.numel(), generator=gen)[:count]] = True
        blanked = x.clone()
        blanked[:, :, mask.view_as(cam)] = 0.0
        drops.append(base - prob(blanked))
    return cam_drop, float(np.mean(drops))


def write_explanation(ex: Explanation, out_dir: str | os.PathLike) -> list[Path]:
    """Everything ``explain`` writes for one video: per method the video with the map over it (MP4) and the raw
    maps (.npy; attention per global block), a PNG grid of the view's frames with the maps, and a PNG of each
    frame's share."""
    from .atomic import atomic_write_file
    from .plots import write_frame_contributions, write_map_grid

    out_dir = Path(out_dir)
    stem = Path(ex.video).stem
    written = []
    overlays = {}
    for name, maps in ex.maps.items():
        peak = float(maps.max()) or 1.0
        overlays[name] = np.stack([blend(f, m / peak) for f, m in zip(ex.frames, maps)])
        raw = ex.attention_blocks if name == "attention" and ex.attention_blocks is not None else maps

        def save_npy(f: IO[Any], a: np.ndarray = raw) -> None:
            np.save(f, a)

        written.append(atomic_write_file(out_dir / f"{stem}_{name}.npy", save_npy, binary=True))
        written.append(write_overlay_video(ex, name, out_dir / f"{stem}_{name}.mp4"))
    title = f"{Path(ex.video).name}: {ex.target_name} ({ex.probability:.1%})"
    written.append(write_map_grid(out_dir / f"{stem}_explain.png", ex.frames, overlays, title=title))
    written.append(
        write_frame_contributions(
            out_dir / f"{stem}_frames.png",
            ex.frame_contributions(),
            ex.indices,
            title=f"{title}: each frame's share of the map",
        )
    )
    return written
