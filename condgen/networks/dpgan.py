"""DP-GAN (Dual Pyramid GAN, BMVC 2022; original sj-li/DP_GAN, a fork of OASIS): generator and discriminator.

Both are OASIS's networks plus one part each:
- `DPGANGenerator`: the OASIS generator preset whose condition is the label pyramid
  (`LabelPyramidCondition`, 3-D noise included) and whose SPADE layers have no shared conv (`SPADE(hidden=0)`:
  gamma / beta are 3x3 convs of the pyramid features of the block's size);
- `DPGANDiscriminator`: the OASIS U-Net plus two multi-scale patch heads on encoder features (after down
  blocks 3 and 5), returning (N+1 logits, [head scores], decoder features of up blocks 1-5). The decoder
  features feed the objective's feature-alignment loss, the head scores its multi-scale hinge terms
  (`DPGANObjective`).
The original adds the heads' hinge terms to its losses as Python numbers, so they carry no gradient and
the heads are never trained (their BN statistics still move). That is the default here
(`train_heads=False`: the head parameters are frozen, and `DPGANObjective` adds the terms without gradient);
`train_heads=True` trains them (the method as the paper describes it).
"""

from __future__ import annotations

from functools import partial
from typing import NamedTuple

from torch import Tensor, nn

from condgen.blocks.label_pyramid import LabelPyramidCondition
from condgen.blocks.spade import SPADE, SPADEResBlock
from condgen.networks.discriminator import DiscriminatorSplit
from condgen.networks.init import init_weights
from condgen.networks.oasis_discriminator import OASISDiscriminator
from condgen.networks.oasis_generator import OASISGenerator
from condgen.registry import register

HEAD_INPUTS = (3, 5)  # the down blocks whose outputs the two patch heads read


@register("generator")
class DPGANGenerator(OASISGenerator):
    """DP-GAN generator: [3-D noise; labels] -> label pyramid -> 6 SPADE blocks without shared convs -> image.

    Defaults: `condition=@LabelPyramidCondition` (its `z_dim` 64), `block` = `SPADEResBlock` with
    `SPADE(hidden=0)`, the 'oasis' schedule, ngf 64. `G(seg, z)` takes z as OASIS does. Sizes: 70,615,683
    parameters on ADE20K (151 label channels), 69,513,219 on Cityscapes (35), 70,919,811 with COCO-Stuff's
    183.
    """

    PRESET = {
        **OASISGenerator.PRESET,
        "block": partial(SPADEResBlock, norm=partial(SPADE, hidden=0)),
        "condition": LabelPyramidCondition,
    }
    OFFICIAL_RENAMES: dict[str, str | None] = {
        **OASISGenerator.OFFICIAL_RENAMES, "seg_pyrmid.": "condition.pyramid."
    }


def patch_head(in_ch: int, width: int = 64) -> nn.Sequential:
    """conv s2 -> LReLU -> 3 x [conv, affine BN, LReLU] -> conv to 1 (3x3 convs with bias, no spectral norm).

    Sequential indices are the original's keys (convs 0, 2, 5, 8, 11; BNs 3, 6, 9).
    """
    layers: list[nn.Module] = [nn.Conv2d(in_ch, width, 3, 2, 1), nn.LeakyReLU(0.2)]
    for _ in range(3):
        layers += [nn.Conv2d(width, width, 3, 1, 1), nn.BatchNorm2d(width), nn.LeakyReLU(0.2)]
    return nn.Sequential(*layers, nn.Conv2d(width, 1, 3, 1, 1))


class DPGANOutputs(NamedTuple):
    """What `DPGANDiscriminator` returns (a tuple, as the original)."""

    logits: Tensor  # (b, semantic_nc + 1, H, W) N+1 class logits
    scores: list[Tensor]  # the two patch heads' maps (b, 1, h, w)
    features: list[Tensor]  # outputs of up blocks 1..5, coarse to fine


@register("discriminator")
class DPGANDiscriminator(OASISDiscriminator):
    """OASIS's U-Net + two multi-scale patch heads; returns (logits, [score_0, score_1], decoder features).

    Args:
        semantic_nc: label channels; the logits have one more ("fake", channel 0).
        ndf: base width (OASIS's hard-coded widths at 64).
        spectral: spectral norm on the U-Net's convs (not on the heads, as the original).
        head_channels: width of the patch heads (original 64).
        train_heads: False (default, the original's behaviour): the heads' parameters are frozen and
            `DPGANObjective` adds their hinge terms without gradient; True trains them.
    Sizes: 22,924,890 parameters for ADE20K's 151 label channels (665,986 of them in the heads).
    """

    def __init__(self, semantic_nc: int, *, ndf: int = 64, spectral: bool = True, head_channels: int = 64,
                 train_heads: bool = False) -> None:
        super().__init__(semantic_nc, ndf=ndf, spectral=spectral)
        widths = [2 * ndf, 2 * ndf, 4 * ndf, 4 * ndf, 8 * ndf, 8 * ndf]  # the down blocks' outputs
        self.dis = nn.ModuleList(patch_head(widths[i], head_channels) for i in HEAD_INPUTS)
        init_weights(self.dis)
        self.train_heads = train_heads
        self.dis.requires_grad_(train_heads)  # frozen heads: DDP and the optimiser skip them

    def forward(self, img: Tensor, seg: Tensor | None = None) -> DPGANOutputs:
        """img: (b, 3, H, W) in [-1, 1], H and W divisible by 64; seg is not read."""
        logits, downs, ups = self.unet(img)
        scores = [head(downs[i]) for head, i in zip(self.dis, HEAD_INPUTS, strict=True)]
        return DPGANOutputs(logits, scores, ups[1:])  # up block 0's output is not aligned (original)

    def split(self, outputs: DPGANOutputs) -> DiscriminatorSplit:
        """The N+1 logits as the one map (the hinge and alignment terms are `DPGANObjective`'s)."""
        return DiscriminatorSplit([outputs.logits], [], [])

