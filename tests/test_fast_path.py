"""The fast inference path: bf16 autocast, torch.compile, channels-last, int8 quantisation, the inference-only
routes (absorbed cross-attention, BatchNorm folded into the local MHRA's first convolution)."""

from __future__ import annotations

import pytest
import torch

from helpers import randomised, tiny_config
from uniformerv2.errors import UniFormerV2Error
from uniformerv2.model import Attention, GlobalUniBlock, LocalMHRA, LocalUniBlock, UniFormerV2
from uniformerv2.precision import native_bf16
from uniformerv2.quantize import LinearInProjAttention, quantize_dynamic_int8


def _model(**overrides) -> UniFormerV2:
    return randomised(UniFormerV2(tiny_config(no_lmhra=False, double_lmhra=True, **overrides)))


def test_bf16_autocast_agrees_with_fp32(video):
    model = _model()
    with torch.no_grad():
        ref = model(video)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = model(video)
    assert out.dtype == torch.bfloat16  # the classifier is a linear layer: autocast runs it in bf16
    out = out.float()
    assert torch.isfinite(out).all()
    # bf16 keeps 8 mantissa bits: ~0.4% relative per rounding; a few layers stay well within 5% of the range
    assert (out - ref).abs().max() <= 0.05 * ref.abs().max()


def test_bf16_autocast_keeps_the_residual_stream_and_every_layer_norm_in_fp32(video):
    # CPU autocast runs LayerNorm in its input's dtype; the residual stream stays fp32 (fp32 + bf16 branch
    # promotes), so every norm normalises fp32 tokens. Softmax runs inside SDPA with fp32 accumulation.
    model = _model()
    seen = []
    hooks = [
        m.register_forward_hook(lambda m, inp, out: seen.append((inp[0].dtype, out.dtype)))
        for m in model.modules()
        if isinstance(m, torch.nn.LayerNorm)
    ]
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        model(video)
    for h in hooks:
        h.remove()
    assert len(seen) == sum(isinstance(m, torch.nn.LayerNorm) for m in model.modules())
    assert set(seen) == {(torch.float32, torch.float32)}


def test_cross_attention_absorbed_route_equals_projected_route():
    torch.manual_seed(0)
    attn = Attention(32, 4)
    with torch.no_grad():
        attn.in_proj_bias.normal_()
        attn.out_proj.bias.normal_()
    x, y = torch.randn(3, 1, 32), torch.randn(3, 50, 32)
    torch.testing.assert_close(attn.cross_absorbed(x, y), attn.cross_projected(x, y), atol=1e-5, rtol=1e-5)
    with torch.no_grad():
        torch.testing.assert_close(attn.cross(x, y), attn.cross_projected(x, y), atol=1e-5, rtol=1e-5)


def test_local_mhra_batchnorm_folding_in_eval_equals_batchnorm_then_conv():
    mhra = LocalMHRA(48)
    randomised(mhra)  # also puts it in eval mode
    video = torch.randn(2, 48, 4, 3, 3).contiguous(memory_format=torch.channels_last_3d)
    with torch.no_grad():
        folded = mhra(video)
        reference = mhra.pos_embed(video)  # the plain Sequential: BatchNorm, then the three convolutions
    torch.testing.assert_close(folded, reference, atol=1e-5, rtol=1e-5)


def test_local_mhra_trains_through_batch_statistics():
    mhra = LocalMHRA(16).train()
    video = torch.randn(2, 16, 4, 3, 3, requires_grad=True)
    mhra(video).sum().backward()
    assert mhra.pos_embed[0].num_batches_tracked.item() == 1
    assert mhra.pos_embed[1].weight.grad is not None and video.grad is not None


def test_channels_last_input_gives_the_same_logits(video):
    model = _model()
    with torch.no_grad():
        ref = model(video)
        out = model(video.contiguous(memory_format=torch.channels_last_3d))
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-5)


def test_views_batched_give_each_view_its_own_logits(video):
    model = _model()
    with torch.no_grad():
        batched = model(video)
        one_by_one = torch.cat([model(v[None]) for v in video])
    torch.testing.assert_close(batched, one_by_one, atol=1e-5, rtol=1e-5)


def test_grad_and_no_grad_forwards_agree(video):
    model = _model(dropout_ratio=0.0)
    with torch.no_grad():
        fast = model(video)
    torch.testing.assert_close(model(video).detach(), fast, atol=1e-5, rtol=1e-5)


def _compiled_equal(module: torch.nn.Module, *inputs) -> None:
    torch._dynamo.reset()
    compiled = torch.compile(module, backend="aot_eager", fullgraph=True)  # fullgraph: a graph break raises
    with torch.no_grad():
        torch.testing.assert_close(compiled(*inputs), module(*inputs), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(compiled(*inputs), module(*inputs), atol=1e-5, rtol=1e-5)  # autograd on


def test_local_block_compiles_without_graph_breaks():
    block = randomised(LocalUniBlock(32, 2, no_lmhra=False, double_lmhra=True))
    _compiled_equal(block, torch.randn(2 * 4, 1 + 2 * 2, 32), 4)


def test_global_block_compiles_without_graph_breaks():
    block = randomised(GlobalUniBlock(32, 2))
    _compiled_equal(block, torch.randn(2, 1, 32), torch.randn(2, 4 * 5, 32))


def test_whole_model_compiles_without_graph_breaks(video):
    _compiled_equal(_model(), video)


def test_int8_quantised_model_covers_the_qkv_projection_and_agrees_on_top1():
    model = _model(width=64, n_dim=64, heads=4, n_head=4, num_classes=10)
    qmodel = quantize_dynamic_int8(model)
    attn = qmodel.backbone.transformer.resblocks[0].attn
    assert isinstance(attn, LinearInProjAttention)
    assert type(attn.in_proj).__name__ == "Linear" and "quantized" in type(attn.in_proj).__module__
    assert "quantized" in type(qmodel.backbone.transformer.resblocks[0].mlp.c_fc).__module__
    assert isinstance(model.backbone.transformer.resblocks[0].attn, Attention)  # the float model is untouched
    videos = torch.randn(16, 3, 4, 32, 32, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        ref, out = model(videos), qmodel(videos)
    assert (ref.argmax(-1) == out.argmax(-1)).float().mean() >= 0.9
    assert (out - ref).abs().max() <= 0.1 * ref.abs().max()


def test_int8_quantisation_keeps_the_float_models_state_dict_keys():
    model = _model()
    keys = list(model.state_dict())
    quantize_dynamic_int8(model)
    assert list(model.state_dict()) == keys
    assert "backbone.transformer.resblocks.0.attn.in_proj_weight" in keys


@pytest.mark.parametrize("inplace", [False, True])
def test_int8_quantisation_returns_an_eval_model(inplace):
    model = _model().train()
    qmodel = quantize_dynamic_int8(model, inplace=inplace)
    assert not qmodel.training
    assert (qmodel is model) == inplace


def _op_names(fn, *inputs) -> set[str]:
    from torch.profiler import profile

    with profile() as prof:
        fn(*inputs)
    return {e.key for e in prof.key_averages()}


@pytest.mark.parametrize(
    "dtype",
    [
        torch.float32,
        pytest.param(
            torch.bfloat16,
            marks=pytest.mark.skipif(
                not native_bf16("cpu"),
                reason="this CPU emulates bf16 (no AVX512_BF16/AMX): oneDNN does not prepack bf16 "
                "linear layers here, and --dtype auto runs float32",
            ),
        ),
    ],
)
def test_compile_for_inference_runs_prepacked_linear_layers_and_keeps_the_logits(video, dtype):
    from uniformerv2.precision import compile_for_inference

    torch._dynamo.reset()
    model = _model()
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=dtype == torch.bfloat16):
        ref = model(video)
        compiled = compile_for_inference(model)
        out = compiled(video)
        ops = _op_names(compiled, video)
    torch.testing.assert_close(out, ref, **({} if dtype == torch.bfloat16 else dict(atol=1e-5, rtol=1e-5)))
    # freezing turned the weights into constants: every linear layer runs on a prepacked weight (MKL for fp32,
    # oneDNN for bf16), none through aten's addmm/mm on the parameter as given
    assert ops & {"mkl::_mkl_linear", "mkldnn::_linear_pointwise"}, sorted(ops)
    assert not ops & {"aten::addmm", "aten::mm", "aten::linear"}, sorted(ops)
    assert not model.training and all(p.is_leaf for p in model.parameters())  # the eager model is untouched


def test_inference_autocast_accepts_names_and_refuses_unknown_dtypes():
    from uniformerv2.precision import autocast_dtype

    assert autocast_dtype("bf16") is torch.bfloat16 and autocast_dtype("float32") is None
    assert autocast_dtype(torch.float32) is None and autocast_dtype(None) is None
    with pytest.raises(ValueError, match="int8"):
        autocast_dtype("int8")


def test_compile_for_inference_without_a_cpp_compiler_says_so_before_compiling(monkeypatch, tmp_path):
    from uniformerv2.precision import compile_for_inference

    monkeypatch.setenv("PATH", str(tmp_path))  # an empty folder: no g++, c++ or clang++
    monkeypatch.delenv("CXX", raising=False)
    with pytest.raises(UniFormerV2Error, match="needs a C.. compiler.*without --compile"):
        compile_for_inference(_model())
