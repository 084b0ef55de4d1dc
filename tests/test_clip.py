"""CLIP initialisation: after loading CLIP weights, the local blocks are CLIP's image encoder, frame by frame."""

from __future__ import annotations

import pytest
import torch

from helpers import tiny_config
from uniformerv2.checkpoint import load_checkpoint
from uniformerv2.model import UniFormerV2

transformers = pytest.importorskip("transformers")


def _last_local_block_class_tokens(model: UniFormerV2, video: torch.Tensor) -> torch.Tensor:
    """Class token of every frame after the last local UniBlock: [N, T, C]."""
    seen = {}
    hook = model.backbone.transformer.resblocks[-1].register_forward_hook(lambda m, i, o: seen.update(out=o))
    with torch.no_grad():
        model.eval()(video)
    hook.remove()
    n, _, t = video.shape[:3]
    return seen["out"][:, 0].reshape(n, t, -1)


def _hf_clip(seed: int = 0):
    torch.manual_seed(seed)
    cfg = transformers.CLIPVisionConfig(
        hidden_size=32,
        intermediate_size=128,
        num_hidden_layers=3,
        num_attention_heads=2,
        image_size=32,
        patch_size=16,
        hidden_act="quick_gelu",
        projection_dim=16,
    )
    return transformers.CLIPVisionModel(cfg).eval()


@pytest.mark.parametrize(
    "lmhra", [dict(no_lmhra=True), dict(no_lmhra=False, double_lmhra=True)], ids=["no_lmhra", "double_lmhra_zero_init"]
)
def test_hugging_face_clip_class_tokens_are_reproduced_per_frame(tmp_path, video, lmhra):
    clip = _hf_clip()
    clip.save_pretrained(tmp_path / "clip")  # model.safetensors, as on the Hugging Face hub
    model = UniFormerV2(tiny_config(**lmhra))
    load_checkpoint(model, tmp_path / "clip" / "model.safetensors")
    n, _, t, h, w = video.shape
    frames = video.permute(0, 2, 1, 3, 4).reshape(n * t, 3, h, w)
    with torch.no_grad():
        expected = clip(pixel_values=frames).last_hidden_state[:, 0].reshape(n, t, -1)
    torch.testing.assert_close(_last_local_block_class_tokens(model, video), expected, atol=1e-5, rtol=1e-4)


def test_open_clip_visual_tower_class_tokens_are_reproduced_per_frame(tmp_path, video):
    pytest.importorskip("open_clip")
    from open_clip.transformer import QuickGELU, VisionTransformer

    torch.manual_seed(0)
    tower = VisionTransformer(
        image_size=32, patch_size=16, width=32, layers=3, heads=2, mlp_ratio=4.0, output_dim=16, act_layer=QuickGELU
    ).eval()
    torch.save({"visual." + k: v for k, v in tower.state_dict().items()}, tmp_path / "open_clip.pt")
    seen = {}
    tower.transformer.register_forward_hook(lambda m, i, o: seen.update(out=o))
    n, _, t, h, w = video.shape
    with torch.no_grad():
        tower(video.permute(0, 2, 1, 3, 4).reshape(n * t, 3, h, w))
    out = seen["out"]
    expected = (out[:, 0] if out.shape[0] == n * t else out[0]).reshape(n, t, -1)
    model = UniFormerV2(tiny_config(no_lmhra=True))
    report = load_checkpoint(model, tmp_path / "open_clip.pt")
    assert report["format"] == "clip"
    torch.testing.assert_close(_last_local_block_class_tokens(model, video), expected, atol=1e-5, rtol=1e-4)


def test_patch_kernel_is_inflated_at_the_temporal_centre_for_temporal_downsampling(tmp_path):
    clip = _hf_clip()
    clip.save_pretrained(tmp_path / "clip")
    model = UniFormerV2(tiny_config(temporal_downsample=True, kernel_size=3))
    load_checkpoint(model, tmp_path / "clip" / "model.safetensors")
    w3d = model.backbone.conv1.weight
    w2d = clip.get_input_embeddings().weight  # the 2D patch convolution
    assert w3d.shape[2] == 3
    assert torch.equal(w3d[:, :, 1], w2d)
    assert not w3d[:, :, 0].any() and not w3d[:, :, 2].any()


def test_clip_loading_leaves_the_video_parts_untouched(tmp_path):
    clip = _hf_clip()
    clip.save_pretrained(tmp_path / "clip")
    model = UniFormerV2(tiny_config())
    before = {k: v.clone() for k, v in model.state_dict().items() if ".dec." in k or ".dpe." in k}
    report = load_checkpoint(model, tmp_path / "clip" / "model.safetensors")
    assert all(torch.equal(model.state_dict()[k], v) for k, v in before.items())
    assert not any(".dec." in k for k in report["loaded"])


def test_openai_torchscript_archive_loads_without_unpickling(tmp_path, video):
    """OpenAI ships CLIP as TorchScript archives (``ViT-B-16.pt``) with ``visual.*`` weights."""
    pytest.importorskip("open_clip")
    from open_clip.transformer import QuickGELU, VisionTransformer

    class CLIPArchive(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.visual = VisionTransformer(
                image_size=32,
                patch_size=16,
                width=32,
                layers=3,
                heads=2,
                mlp_ratio=4.0,
                output_dim=16,
                act_layer=QuickGELU,
            )

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.visual(x)

    torch.manual_seed(0)
    clip = CLIPArchive().eval()
    torch.jit.trace(clip, torch.randn(1, 3, 32, 32), check_trace=False).save(str(tmp_path / "ViT-tiny.pt"))
    model = UniFormerV2(tiny_config(no_lmhra=True))
    assert load_checkpoint(model, tmp_path / "ViT-tiny.pt")["format"] == "clip"
    assert torch.equal(
        model.backbone.transformer.resblocks[2].mlp.c_fc.weight, clip.visual.transformer.resblocks[2].mlp.c_fc.weight
    )
