"""DP-GAN's label pyramid as a condition source (DP-GAN, BMVC 2022, Sec. 3.1: the generator side of the dual
pyramid).

The conditioning map of OASIS ([3-D noise; one-hot labels] at label resolution) goes through a small conv
pyramid: level 0 a 3x3 conv to `first_channels`, level 1 a 3x3 conv to `channels`, then one stride-2 3x3
conv per generator upsampling, each conv followed by an affine BatchNorm and a ReLU. Block i of the generator
(coarse to fine) is conditioned on cat(bilinear(coarsest level -> its size), the level of its size), 2 x
`channels` channels, which a SPADE without its shared conv (`SPADE.hidden = 0`) turns into gamma / beta.

As the original (sj-li/DP_GAN, `seg_pyrmid`): the pyramid's BatchNorms are plain affine `BatchNorm2d`s (not
the generator's synchronized, affine-free ones); the stride-2 convs give ceil(n / 2) sizes, so H and W must
be multiples of 2^num_upsamplings. `fc` still reads the nearest-downsampled [noise; labels], as in OASIS.
Unlike the original, the number of levels follows the generator's schedule (the original hard-codes 6
blocks), and `--no_3dnoise` works (`z_dim = 0`; the original's first BatchNorm then has the wrong width).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from condgen.blocks.noise import NoiseCondition
from condgen.ops.label_conv import conv_labels
from condgen.registry import register


def _level(in_ch: int, out_ch: int, stride: int) -> nn.Sequential:
    """conv 3x3 (bias) -> affine BN -> ReLU; indices 0 and 1 are the original's keys."""
    return nn.Sequential(nn.Conv2d(in_ch, out_ch, 3, stride, 1), nn.BatchNorm2d(out_ch), nn.ReLU())


@register("condition")
class LabelPyramidCondition(NoiseCondition):
    """[noise; labels] -> a conv pyramid -> one 2 x `channels` condition map per generator block.

    Args:
        semantic_nc: label channels of `seg`.
        num_levels: the generator's number of resolutions (blocks); the pyramid has num_levels + 1 convs.
        ngf: the generator's base width (unused: the original's pyramid widths are fixed).
        z_dim: noise channels before the labels (DP-GAN / OASIS: 64; 0 = no 3-D noise).
        channels: width of levels 1.. (original 64); the condition maps have twice this.
        first_channels: width of level 0 (original 32).
    """

    def __init__(self, semantic_nc: int, *, num_levels: int = 6, ngf: int = 64, z_dim: int = 64,
                 channels: int = 64, first_channels: int = 32) -> None:
        super().__init__(semantic_nc, num_levels=num_levels, ngf=ngf, z_dim=z_dim)
        self.cond_nc = 2 * channels
        levels = [_level(z_dim + semantic_nc, first_channels, 1), _level(first_channels, channels, 1)]
        levels += [_level(channels, channels, 2) for _ in range(num_levels - 1)]
        self.pyramid = nn.ModuleList(levels)

    @property
    def fc_nc(self) -> int:
        return self.z_dim + self.semantic_nc

    def label_input(self, seg: Tensor, z: Tensor | None = None) -> Tensor:
        return super().label_input(seg, z) if self.z_dim else seg

    def forward(self, labels: Tensor) -> list[Tensor]:
        """labels: (b, z_dim + semantic_nc, H, W) -> maps (b, 2 x channels, h_i, w_i), coarse first."""
        level0 = self.pyramid[0]
        x = level0[2](level0[1](conv_labels(level0[0], labels)))  # the one-hot channels label-sparse
        levels = []
        for level in self.pyramid[1:]:
            x = level(x)
            levels.append(x)
        top = levels[-1]
        out = []
        for p in reversed(levels):
            out.append(torch.cat([F.interpolate(top, size=p.shape[-2:], mode="bilinear"), p], 1))
        return out
