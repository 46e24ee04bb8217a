"""The label feature pyramid: CC-FPSE's global-context weight-prediction input ("w/ FP", Sec. 3.1.2, Fig. 2).

An encoder downsamples the label map (one stride-1 then stride-2 layers), a decoder upsamples it back with
lateral connections (FPN style); each decoder level, concatenated with the label map at that size, is the
condition of the generator blocks at that resolution. Every layer is SN conv (no bias) + affine BN + lrelu
0.2, width `ngf` as in the official code. Deviations: containers are lists (`enc`, `lat`, `dec`; the rename
table lives in `condgen.networks.ccfpse_generator`), and the top-down path resizes to the lateral's size
(identical to the official nearest x2 whenever sizes halve exactly, which the official code requires).
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from condgen.blocks.condition import ConditionSource
from condgen.blocks.norm import batch_norm, spectral_norm
from condgen.ops.label_conv import cat_labels, conv_labels
from condgen.registry import register
from condgen.utils import default


def conv_bn_lrelu(in_ch: int, out_ch: int, kernel_size: int, stride: int = 1) -> nn.Sequential:
    """SN conv (no bias) + affine BN + LeakyReLU(0.2): indices 0 and 1 are the official keys' `0.0`/`0.1`."""
    conv = nn.Conv2d(in_ch, out_ch, kernel_size, stride, padding=kernel_size // 2, bias=False)
    return nn.Sequential(spectral_norm(conv), batch_norm(out_ch), nn.LeakyReLU(0.2, inplace=True))


@register("condition")
class FeaturePyramidCondition(ConditionSource):
    """Label map -> pyramid of condition maps `cat(seg at that size, pyramid features)`, coarse to fine.

    Level sizes are H / 2^(num_levels-1) ... H: with 'normal' (num_levels 6) at 256 px, 8 ... 256, one
    per generator resolution (G_middle_1 reuses the 16 px level, as in the official code).

    Args:
        semantic_nc: label channels of `seg`.
        num_levels: pyramid levels, one per generator resolution (6 for 'normal', 7 for 'more').
        ngf: the generator's base width; the pyramid width defaults to it (official: ngf).
        width: pyramid feature channels, overriding `ngf`.
    """

    def __init__(
        self, semantic_nc: int, *, num_levels: int = 6, ngf: int = 64, width: int | None = None
    ) -> None:
        if num_levels < 1:
            raise ValueError(f"FeaturePyramidCondition needs num_levels >= 1, got {num_levels}")
        super().__init__(semantic_nc)
        width = default(width, ngf)
        self.semantic_nc, self.num_levels, self.width = semantic_nc, num_levels, width
        self.cond_nc = semantic_nc + width
        self.enc = nn.ModuleList(
            conv_bn_lrelu(semantic_nc if i == 0 else width, width, 3, stride=1 if i == 0 else 2)
            for i in range(num_levels)
        )
        self.lat = nn.ModuleList(conv_bn_lrelu(width, width, 1) for _ in range(num_levels - 1))
        self.dec = nn.ModuleList(conv_bn_lrelu(width, width, 3) for _ in range(num_levels - 1))

    def features(self, seg: Tensor) -> list[Tensor]:
        """The decoder outputs (official `segout1..`), coarse to fine: (b, width, H / 2^i, W / 2^i)."""
        skips = []
        first = self.enc[0]  # its conv reads the label map: label-sparse (condgen.ops.label_conv)
        h = first[2](first[1](conv_labels(first[0], seg, what="the label map")))
        skips.append(h)
        for enc in self.enc[1:]:
            h = enc(h)
            skips.append(h)
        out = [skips.pop()]
        for lat, dec in zip(self.lat, self.dec, strict=True):
            skip = skips.pop()
            top_down = F.interpolate(out[-1], size=skip.shape[-2:], mode="nearest")
            out.append(dec(top_down + lat(skip)))
        return out

    def forward(self, seg: Tensor) -> list[Tensor]:
        """seg: (b, semantic_nc, H, W) one-hot.

        Returns `num_levels` maps (b, semantic_nc + width, h_i, w_i), coarse to fine.
        """
        if seg.shape[1] != self.semantic_nc:
            raise ValueError(
                f"FeaturePyramidCondition built for {self.semantic_nc} label channels got {seg.shape[1]}"
            )
        # cat(nearest-resized seg, f), carrying its label layout: the blocks' convs skip the one-hot channels
        return [cat_labels(seg, f, size=f.shape[-2:]) for f in self.features(seg)]
