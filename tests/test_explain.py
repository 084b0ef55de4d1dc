"""`explain`: Grad-CAM and global-block attention maps that leave the model's output alone, drawn back onto the
video."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from helpers import SHARED, portrait_frames, randomised, tiny_config, write_frames
from uniformerv2 import VideoClassifier, save_checkpoint
from uniformerv2.cli import main
from uniformerv2.data import probe_num_frames, read_frames
from uniformerv2.explain import attention_maps, gradcam
from uniformerv2.model import UniFormerV2

DEMO = SHARED / "data" / "videos" / "demo.mp4"


def _model(**arch) -> UniFormerV2:
    return randomised(UniFormerV2(tiny_config(no_lmhra=False, double_lmhra=True, dropout_ratio=0.0, **arch)))


def test_explaining_does_not_change_the_models_output(video):
    model = _model()
    with torch.no_grad():
        before = model(video)
    _, cam_logits = gradcam(model, video, target=2)
    _, attn_logits = attention_maps(model, video)
    with torch.no_grad():
        after = model(video)
    torch.testing.assert_close(after, before, rtol=0, atol=0)
    torch.testing.assert_close(cam_logits, before, rtol=1e-5, atol=1e-6)  # autograd on: the projected route
    torch.testing.assert_close(attn_logits, before, rtol=0, atol=0)
    assert all(p.grad is None for p in model.parameters())


def test_gradcam_gives_a_map_per_frame_at_input_resolution(video):
    cam, _ = gradcam(_model(), video, target=[0, 1])
    assert cam.shape == (2, 4, 32, 32) and cam.min() >= 0 and torch.allclose(cam.flatten(1).amax(1), torch.ones(2))


def test_gradcam_follows_the_input_through_temporal_downsampling():
    model = _model(temporal_downsample=True)
    x = torch.randn(1, 3, 8, 32, 32, generator=torch.Generator().manual_seed(0))
    cam, _ = gradcam(model, x, target=1)
    assert cam.shape == (1, 8, 32, 32)


def test_attention_maps_are_the_video_tokens_weights_on_the_patches(video):
    maps, _ = attention_maps(_model(), video)
    assert maps.shape == (2, 2, 4, 32, 32)  # blocks, views, frames, height, width
    share = maps.flatten(2).sum(-1)  # each block's weight on the clip's patches, the rest on class tokens
    assert (share > 0).all() and (share <= 1 + 1e-5).all()


def test_explain_writes_videos_pictures_and_raw_maps(tmp_path, capsys):
    ckpt = save_checkpoint(_model(), tmp_path / "tiny.safetensors")
    assert main(["explain", str(DEMO), "--checkpoint", str(ckpt), "--out-dir", str(tmp_path / "out")]) == 0
    out = tmp_path / "out"
    for name in ("gradcam", "attention"):
        assert probe_num_frames(out / f"demo_{name}.mp4") == probe_num_frames(DEMO)
        assert read_frames(out / f"demo_{name}.mp4", [0]).shape == read_frames(DEMO, [0]).shape  # full frames
    assert np.load(out / "demo_gradcam.npy").shape == (4, 32, 32)
    assert np.load(out / "demo_attention.npy").shape == (2, 4, 32, 32)
    for png in ("demo_explain.png", "demo_frames.png"):
        assert (out / png).read_bytes()[:4] == b"\x89PNG"
    assert "share per frame" in capsys.readouterr().out


def test_the_overlay_lies_on_the_crop_of_the_view(tmp_path):
    """A portrait video's centre crop is its middle band: the map is drawn there and nowhere else."""
    video = write_frames(tmp_path / "tall.mp4", portrait_frames(frames=8, height=64, width=32))
    clf = VideoClassifier(_model(), class_names=[f"c{i}" for i in range(5)])
    ex = clf.explain(video, method="gradcam")
    assert ex.crop_box == (0, 16, 32, 48) and ex.frames.shape == (4, 32, 32, 3)
    from uniformerv2.explain import write_overlay_video

    drawn = read_frames(write_overlay_video(ex, "gradcam", tmp_path / "o.mp4"), [0]).astype(int)
    plain = read_frames(video, [0]).astype(int)
    outside = np.abs(drawn - plain)[:, list(range(0, 12)) + list(range(52, 64))].mean()
    inside = np.abs(drawn - plain)[:, 20:44].mean()
    assert outside < 3 < inside


def test_an_unknown_class_name_is_one_error_with_suggestions(tmp_path, capsys):
    ckpt = save_checkpoint(_model(), tmp_path / "tiny.safetensors")
    (tmp_path / "names.txt").write_text("run\njump\nswim\nclimb\ndance\n")
    assert (
        main(
            [
                "explain",
                str(DEMO),
                "--checkpoint",
                str(ckpt),
                "--labels",
                str(tmp_path / "names.txt"),
                "--class",
                "jumping",
                "--out-dir",
                str(tmp_path / "o"),
            ]
        )
        == 1
    )
    assert "--class 'jumping' is not a class of the model; closest: 'jump'" in capsys.readouterr().err


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--block", "9"], "--block 9: the model has local blocks 0..2"),
        (["--method", "saliency"], "invalid choice: 'saliency'"),
    ],
)
def test_bad_explain_options_are_one_line(tmp_path, capsys, argv, message):
    ckpt = save_checkpoint(_model(), tmp_path / "tiny.safetensors")
    try:
        code = main(["explain", str(DEMO), "--checkpoint", str(ckpt), "--out-dir", str(tmp_path / "o"), *argv])
    except SystemExit as e:  # argparse's usage errors
        code = e.code
    assert code in (1, 2) and message in capsys.readouterr().err
    assert not (tmp_path / "o").exists()  # nothing half-written


def test_a_missing_video_is_one_error_line(tmp_path, capsys):
    ckpt = save_checkpoint(_model(), tmp_path / "tiny.safetensors")
    assert main(["explain", str(tmp_path / "gone.mp4"), "--checkpoint", str(ckpt)]) == 1
    assert capsys.readouterr().err.strip() == f"uniformerv2 explain: error: {tmp_path / 'gone.mp4'}: no such file"
