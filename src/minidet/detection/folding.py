"""Fold a miniML conv block's BatchNorm into its convolution, for the inference-only rewrites
of the network: the torch fast path (:mod:`.scorer`) and the ONNX graph (:mod:`.onnx_net`)."""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["fold_conv_bn"]


def fold_conv_bn(block: nn.Module) -> tuple[torch.Tensor, torch.Tensor, int, int, int, float]:
    """One conv block with its BatchNorm folded into the convolution (eval-mode algebra):
    ``(weight, bias, pad_left, pad_right, pool, negative_slope)``."""
    conv = block.conv.conv
    bn = block.bn
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    weight = (conv.weight * scale[:, None, None]).contiguous()
    bias = ((conv.bias - bn.running_mean) * scale + bn.bias).contiguous()
    pool = block.pool.kernel_size if isinstance(block.pool, nn.AvgPool1d) else 1
    if isinstance(pool, tuple):
        pool = pool[0]
    return weight, bias, int(block.conv.pad_left), int(block.conv.pad_right), int(pool), float(
        block.act.negative_slope)
