"""Official weight initialisation (SPADE `init_weights`, `init_type=xavier`, `init_variance=0.02`)."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils import parametrize


@torch.no_grad()
def init_weights(net: nn.Module, gain: float = 0.02) -> nn.Module:
    """xavier_normal(gain) on every conv/linear weight, zero biases; affine BN weight ~ N(1, gain).

    Spectral-normalised layers get their *unnormalised* weight initialised, as the official code does
    (its in-place init rewrites `weight_orig`).
    """
    for m in net.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            if m.affine:
                nn.init.normal_(m.weight, 1.0, gain)
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.Conv2d, nn.Linear)):
            if parametrize.is_parametrized(m, "weight"):
                weight = m.parametrizations.weight.original
            else:
                weight = m.weight
            nn.init.xavier_normal_(weight, gain=gain)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
    return net
