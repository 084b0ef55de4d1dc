"""Opt-in int8 dynamic quantisation for CPU deployment.

``quantize_dynamic_int8(model)`` returns a copy of a float :class:`~uniformerv2.model.UniFormerV2` in which every
linear layer of the network runs with int8 weights and dynamically quantised int8 activations
(:func:`torch.ao.quantization.quantize_dynamic`, fbgemm on x86): the local blocks' fused query-key-value
projections (held as ``attn.in_proj_weight`` parameters, so first moved into an ``nn.Linear`` the quantiser can
swap), the attention output projections, the MLPs and the classifier. The convolutions (patch embedding, local
MHRA, position encodings), the norms and the global blocks' cross-attention, which never projects its keys and
values (see :meth:`~uniformerv2.model.Attention.cross_absorbed`), stay in float.

Load a float checkpoint into the float model first, then quantise; the quantised model's ``state_dict`` is
PyTorch's dynamic-quantised format, not one of the checkpoint formats of :mod:`uniformerv2.checkpoint`.
Quantised models are for inference on CPU only (no autograd, no bf16 autocast). PyTorch 2.14 warns that its
quantised tensors (which ``torch.ao`` dynamic quantisation uses) are deprecated in favour of ``torchao``.
"""

from __future__ import annotations

import copy
import warnings

import torch
from torch import Tensor, nn

from .model import Attention, LocalUniBlock

__all__ = ["quantize_dynamic_int8", "LinearInProjAttention"]


class LinearInProjAttention(Attention):
    """Self-attention whose fused query-key-value projection is an ``nn.Linear`` submodule, ``in_proj``.

    Built from an :class:`~uniformerv2.model.Attention` by moving (not copying) its ``in_proj_weight`` and
    ``in_proj_bias`` into ``in_proj``; the forward pass is unchanged. Module-swapping tools such as dynamic
    quantisation then cover the projection like any other linear layer.
    """

    def __init__(self, attn: Attention) -> None:
        nn.Module.__init__(self)  # no fresh parameters: they come from ``attn``
        self.num_heads = attn.num_heads
        self.head_dim = attn.head_dim
        out_features, in_features = attn.in_proj_weight.shape
        self.in_proj = nn.Linear(in_features, out_features, device="meta")
        self.in_proj.weight = attn.in_proj_weight
        self.in_proj.bias = attn.in_proj_bias
        self.out_proj = attn.out_proj

    def in_projection(self, x: Tensor) -> Tensor:
        return self.in_proj(x)

    def cross(self, x: Tensor, y: Tensor) -> Tensor:
        raise NotImplementedError("LinearInProjAttention is for the local blocks' self-attention only")


def quantize_dynamic_int8(model: nn.Module, *, inplace: bool = False) -> nn.Module:
    """A copy of ``model`` (or ``model`` itself with ``inplace=True``), in eval mode, with int8 linear layers.

    Outputs stay float32; expect logits close to, not equal to, the float model's (measure the top-1 agreement on
    your data: ``benchmarks/bench_model.py --int8-agreement``).
    """
    if not inplace:
        model = copy.deepcopy(model)
    model.eval()
    for block in model.modules():
        if isinstance(block, LocalUniBlock) and not isinstance(block.attn, LinearInProjAttention):
            block.attn = LinearInProjAttention(block.attn)
    with warnings.catch_warnings():  # torch.ao.quantization announces its move to torchao; it still works
        warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"torch\.ao\.quantization")
        warnings.filterwarnings("ignore", message=r".*torch\.ao\.quantization.*deprecated", category=DeprecationWarning)
        torch.ao.quantization.quantize_dynamic(model, {nn.Linear}, dtype=torch.qint8, inplace=True)
    return model
