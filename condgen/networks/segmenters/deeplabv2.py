"""DeepLabV2-ResNet101 with multi-scale inputs (MSC), as kazuto1011/deeplab-pytorch's COCO-Stuff 164k weights.

Architecture facts (fixture notes, no original code): a ResNet-101 whose stem is a 7x7/2 conv + BN + ReLU
and a 3x3/2 max-pool with ``ceil_mode=True``; bottlenecks with the stride on the 1x1 ``reduce`` conv; the
last two stages dilated 2 and 4 (output stride 8); ASPP = four 3x3 convs of dilation 6/12/18/24 (with bias)
*summed*. MSC runs the base at scales 1, 0.5 and 0.75 (bilinear, ``align_corners=False``), resizes the
smaller logits to the scale-1 size and takes the element-wise max: raw logits at 1/8 resolution.

Key names are those of the released file (``base.layer2.block1.reduce.conv.weight``,
``base.aspp.c0.bias``...), 632 entries, so the rename table only strips a DataParallel prefix.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

RENAME = {"module.": ""}  # released keys == condgen keys; only a DataParallel wrapper would differ
N_BLOCKS = (3, 4, 23, 3)
ATROUS_RATES = (6, 12, 18, 24)
SCALES = (0.5, 0.75)  # besides 1


class ConvBnReLU(nn.Sequential):
    def __init__(self, cin: int, cout: int, k: int, stride: int, pad: int, dil: int, relu: bool = True):
        super().__init__()
        self.add_module("conv", nn.Conv2d(cin, cout, k, stride, pad, dil, bias=False))
        self.add_module("bn", nn.BatchNorm2d(cout, eps=1e-5))
        if relu:
            self.add_module("relu", nn.ReLU())


class Bottleneck(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int, dilation: int, downsample: bool):
        super().__init__()
        mid = cout // 4
        self.reduce = ConvBnReLU(cin, mid, 1, stride, 0, 1)
        self.conv3x3 = ConvBnReLU(mid, mid, 3, 1, dilation, dilation)
        self.increase = ConvBnReLU(mid, cout, 1, 1, 0, 1, relu=False)
        self.shortcut = ConvBnReLU(cin, cout, 1, stride, 0, 1, relu=False) if downsample else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        return F.relu(self.increase(self.conv3x3(self.reduce(x))) + self.shortcut(x))


class ResLayer(nn.Sequential):
    def __init__(self, n: int, cin: int, cout: int, stride: int, dilation: int):
        super().__init__()
        for i in range(n):
            self.add_module(
                f"block{i + 1}",
                Bottleneck(cin if i == 0 else cout, cout, stride if i == 0 else 1, dilation, i == 0),
            )


class Stem(nn.Sequential):
    def __init__(self):
        super().__init__()
        self.add_module("conv1", ConvBnReLU(3, 64, 7, 2, 3, 1))
        self.add_module("pool", nn.MaxPool2d(3, 2, 1, ceil_mode=True))


class ASPP(nn.Module):
    """Four dilated 3x3 classifiers, summed."""

    def __init__(self, cin: int, num_classes: int, rates: tuple[int, ...] = ATROUS_RATES):
        super().__init__()
        for i, r in enumerate(rates):
            self.add_module(f"c{i}", nn.Conv2d(cin, num_classes, 3, 1, padding=r, dilation=r, bias=True))

    def forward(self, x: Tensor) -> Tensor:
        return sum(conv(x) for conv in self.children())


class DeepLabV2(nn.Sequential):
    """The single-scale base: image -> raw logits at 1/8 resolution."""

    def __init__(self, num_classes: int = 182, n_blocks: tuple[int, ...] = N_BLOCKS):
        super().__init__()
        self.add_module("layer1", Stem())
        self.add_module("layer2", ResLayer(n_blocks[0], 64, 256, 1, 1))
        self.add_module("layer3", ResLayer(n_blocks[1], 256, 512, 2, 1))
        self.add_module("layer4", ResLayer(n_blocks[2], 512, 1024, 1, 2))
        self.add_module("layer5", ResLayer(n_blocks[3], 1024, 2048, 1, 4))
        self.add_module("aspp", ASPP(2048, num_classes))


class DeepLabV2MSC(nn.Module):
    """MSC wrapper (keys ``base.*``): element-wise max of the base logits over scales 1, 0.5, 0.75.

    Args:
        legacy_interp: scale the inputs as torch <= 1.4 did (sampling ratio in/out,
            ``recompute_scale_factor=True``), the 2019 behaviour; identical at 256x256.
    """

    def __init__(
        self, num_classes: int = 182, scales: tuple[float, ...] = SCALES, legacy_interp: bool = False
    ):
        super().__init__()
        self.base = DeepLabV2(num_classes)
        self.scales, self.legacy_interp = tuple(scales), legacy_interp
        self.num_classes = num_classes

    def forward(self, x: Tensor) -> Tensor:
        logits = self.base(x)
        size = logits.shape[-2:]
        out = logits
        for p in self.scales:
            h = F.interpolate(
                x,
                scale_factor=p,
                mode="bilinear",
                align_corners=False,
                recompute_scale_factor=True if self.legacy_interp else None,
            )
            y = F.interpolate(self.base(h), size=size, mode="bilinear", align_corners=False)
            out = torch.maximum(out, y)
        return out
