"""The OASIS U-Net discriminator (OASIS, ICLR 2021, Sec. 3.1-3.2): a semantic segmentation network.

It sees the image only and returns per-pixel logits over N+1 classes (B, semantic_nc + 1, H, W): channel 0
is "fake", channel k + 1 is label channel k of `seg` (in whatever order the label map has; see
`condgen/data/oasis_labels.py`). H and W must be divisible by 64.

Structure (widths for the default ndf = 64, the original's hard-coded 128,128,256,256,512,512):
- 6 residual down blocks, each halving the size with 2x2 average pooling. Block 0: shortcut
  conv_s(pool(x)) (pool first), residual pool(conv2(lrelu(conv1(x)))) (no activation before conv1).
  Blocks 1-5: shortcut pool(conv_s(x)) (conv first) or pool(x), residual pool(conv2(lrelu(conv1(lrelu(x))))).
- 6 residual up blocks, each doubling the size (nearest). Up block 0 reads the bottleneck; up block i >= 1
  reads cat(down block 5 - i's output, x) (encoder feature first). Shortcut conv_s(up(x)) (or up(x) when the
  width is kept), residual conv2(lrelu(conv1(up(lrelu(x))))).
- A 1x1 head (no spectral norm) to semantic_nc + 1 logits.
Every other conv is spectral-normalised (3x3 conv1 / conv2 with bias; 1x1 conv_s with bias).
The objective that reads this output is `OASISObjective` (the N+1 cross-entropy, not a hinge loss).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from condgen.blocks.norm import spectral_norm
from condgen.networks.discriminator import DiscriminatorSplit
from condgen.networks.init import init_weights
from condgen.registry import register

NUM_LEVELS = 6


class _ResBlockD(nn.Module):
    """One U-Net residual block: `down` pools by 2 at the end, `up` upsamples by 2 after the activation."""

    def __init__(self, fin: int, fout: int, *, mode: str, first: bool = False, spectral: bool = True) -> None:
        super().__init__()
        self.mode, self.first = mode, first
        self.conv1 = spectral_norm(nn.Conv2d(fin, fout, 3, padding=1), spectral)
        self.conv2 = spectral_norm(nn.Conv2d(fout, fout, 3, padding=1), spectral)
        self.learned_shortcut = fin != fout
        if self.learned_shortcut:
            self.conv_s = spectral_norm(nn.Conv2d(fin, fout, 1), spectral)

    def shortcut(self, x: Tensor) -> Tensor:
        if self.mode == "up":
            x = F.interpolate(x, scale_factor=2, mode="nearest")
            return self.conv_s(x) if self.learned_shortcut else x
        if self.first:  # pool first
            return self.conv_s(F.avg_pool2d(x, 2))
        return F.avg_pool2d(self.conv_s(x) if self.learned_shortcut else x, 2)

    def forward(self, x: Tensor) -> Tensor:
        dx = x if self.first else F.leaky_relu(x, 0.2)
        if self.mode == "up":
            dx = F.interpolate(dx, scale_factor=2, mode="nearest")
        dx = self.conv2(F.leaky_relu(self.conv1(dx), 0.2))
        if self.mode == "down":
            dx = F.avg_pool2d(dx, 2)
        return self.shortcut(x) + dx


def _renames() -> dict[str, str | None]:
    """Original keys -> ours: the convs' slots in the original's small sequentials are dropped."""
    table: dict[str, str | None] = {}
    for i in range(NUM_LEVELS):
        table[f"body_down.{i}.conv1.{0 if i == 0 else 1}."] = f"body_down.{i}.conv1."
        table[f"body_down.{i}.conv2.1."] = f"body_down.{i}.conv2."
        table[f"body_up.{i}.conv1.2."] = f"body_up.{i}.conv1."
        table[f"body_up.{i}.conv2.1."] = f"body_up.{i}.conv2."
    return table


@register("discriminator")
class OASISDiscriminator(nn.Module):
    """U-Net segmentation discriminator: image -> (B, semantic_nc + 1, H, W) N+1 class logits.

    Args:
        semantic_nc: label channels; the output has one more ("fake", channel 0).
        ndf: base width; encoder widths 2,2,4,4,8,8 x ndf (original: 64, not an option there).
        spectral: spectral norm on every conv except the head (original default).
    Sizes: 22,258,904 parameters for ADE20K's 151 label channels.
    """

    OFFICIAL_RENAMES: dict[str, str | None] = _renames()

    def __init__(self, semantic_nc: int, *, ndf: int = 64, spectral: bool = True) -> None:
        super().__init__()
        self.semantic_nc = semantic_nc
        down = [3, 2 * ndf, 2 * ndf, 4 * ndf, 4 * ndf, 8 * ndf, 8 * ndf]
        up_out = [8 * ndf, 4 * ndf, 4 * ndf, 2 * ndf, 2 * ndf, ndf]
        self.body_down = nn.ModuleList(
            _ResBlockD(down[i], down[i + 1], mode="down", first=i == 0, spectral=spectral)
            for i in range(NUM_LEVELS)
        )
        ups, fin = [], down[-1]
        for i in range(NUM_LEVELS):
            if i > 0:
                fin += down[NUM_LEVELS - i]  # the skip connection from down block 5 - i
            ups.append(_ResBlockD(fin, up_out[i], mode="up", spectral=spectral))
            fin = up_out[i]
        self.body_up = nn.ModuleList(ups)
        self.layer_up_last = nn.Conv2d(ndf, semantic_nc + 1, 1)
        init_weights(self)

    def forward(self, img: Tensor, seg: Tensor | None = None) -> Tensor:
        """img: (b, 3, H, W) in [-1, 1], H and W divisible by 64; seg is not read (the image only)."""
        return self.unet(img)[0]

    def unet(self, img: Tensor) -> tuple[Tensor, list[Tensor], list[Tensor]]:
        """(logits, the 6 down blocks' outputs, the 6 up blocks' outputs) for an image batch."""
        if img.dim() != 4 or img.shape[1] != 3:
            raise ValueError(f"img must be (b, 3, H, W) RGB in [-1, 1], got shape {tuple(img.shape)}")
        h, w = img.shape[-2:]
        if h % 2**NUM_LEVELS or w % 2**NUM_LEVELS:
            raise ValueError(f"OASISDiscriminator needs H and W divisible by 64, got {h}x{w}")
        x, skips, ups = img, [], []
        for block in self.body_down:
            x = block(x)
            skips.append(x)
        for i, block in enumerate(self.body_up):
            if i > 0:
                x = torch.cat([skips[NUM_LEVELS - 1 - i], x], dim=1)
            x = block(x)
            ups.append(x)
        return self.layer_up_last(x), skips, ups

    def split(self, outputs: Tensor) -> DiscriminatorSplit:
        """The per-pixel logits as the one map; no features (feature matching does not apply)."""
        return DiscriminatorSplit([outputs], [], [])
