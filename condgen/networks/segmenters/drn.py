"""DRN-D-105 ``DRNSeg`` (fyu/drn), as the Cityscapes weights ``drn-d-105_ms_cityscapes.pth``.

Architecture facts (fixture notes, no original code): ``base`` is an ``nn.Sequential`` of the DRN's
layer0..layer8 (keys ``base.0`` ... ``base.8``): layer0 a 7x7 conv (3 -> 16, stride 1) + BN + ReLU; layer1/2
3x3 conv+BN+ReLU (16, stride 1; 32, stride 2); layer3..6 bottleneck stages (torchvision's `Bottleneck` fits:
stride and dilation on the 3x3 conv, keys ``conv1..3/bn1..3/downsample.{0,1}``) of 3, 4, 23, 3 blocks,
widths 64/128/256/512 x 4, strides 2, 2, 1, 1 and dilations 1, 1, 2, 4; layer7 a 3x3 conv 2048 -> 512 of
dilation 2, layer8 512 -> 512 of dilation 1 (each + BN + ReLU). ``seg`` is a 1x1 conv to 19 classes with
bias; ``up`` a frozen bilinear ``ConvTranspose2d(19, 19, 16, stride 8, padding 4, groups 19)`` whose weight
is a (counted, saved) Parameter. Output stride 8: the seg logits are ceil(ceil(ceil(H/2)/2)/2); ``up`` gives
exactly 8x that size.

The released keys are condgen's keys; the rename table only strips a DataParallel prefix.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torchvision.models.resnet import Bottleneck

RENAME = {"module.": ""}
LAYERS = (1, 1, 3, 4, 23, 3, 1, 1)
CHANNELS = (16, 32, 64, 128, 256, 512, 512, 512)


def _conv_bn_relu(cin: int, cout: int, stride: int = 1, dilation: int = 1, k: int = 3) -> nn.Sequential:
    pad = dilation * (k // 2)
    return nn.Sequential(
        nn.Conv2d(cin, cout, k, stride, pad, dilation=dilation, bias=False), nn.BatchNorm2d(cout), nn.ReLU()
    )


def _bottlenecks(cin: int, planes: int, n: int, stride: int, dilation: int) -> nn.Sequential:
    cout = planes * Bottleneck.expansion
    down = None
    if stride != 1 or cin != cout:
        down = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))
    blocks = [Bottleneck(cin, planes, stride, down, dilation=dilation)]
    blocks += [Bottleneck(cout, planes, dilation=dilation) for _ in range(n - 1)]
    return nn.Sequential(*blocks)


def bilinear_up_weight(num_classes: int, k: int = 16) -> Tensor:
    """The fixed bilinear kernel of the up-sampler, (num_classes, 1, k, k)."""
    f = (k + 1) // 2
    c = (2 * f - 1 - f % 2) / (2.0 * f)
    r = torch.arange(k, dtype=torch.float64)
    w1 = 1 - (r / f - c).abs()
    return (w1[:, None] * w1[None, :]).float().expand(num_classes, 1, k, k).clone()


class DRNSeg(nn.Module):
    """DRN-D-105 segmentation network: ``forward`` gives the raw seg logits at 1/8 resolution."""

    def __init__(self, num_classes: int = 19):
        super().__init__()
        c = CHANNELS
        self.base = nn.Sequential(
            nn.Sequential(nn.Conv2d(3, c[0], 7, 1, 3, bias=False), nn.BatchNorm2d(c[0]), nn.ReLU()),
            _conv_bn_relu(c[0], c[0], 1),
            _conv_bn_relu(c[0], c[1], 2),
            _bottlenecks(c[1], c[2], LAYERS[2], 2, 1),
            _bottlenecks(c[2] * 4, c[3], LAYERS[3], 2, 1),
            _bottlenecks(c[3] * 4, c[4], LAYERS[4], 1, 2),
            _bottlenecks(c[4] * 4, c[5], LAYERS[5], 1, 4),
            _conv_bn_relu(c[5] * 4, c[6], 1, 2),
            _conv_bn_relu(c[6], c[7], 1, 1),
        )
        self.seg = nn.Conv2d(c[7], num_classes, 1, bias=True)
        self.up = nn.ConvTranspose2d(num_classes, num_classes, 16, 8, 4, groups=num_classes, bias=False)
        with torch.no_grad():
            self.up.weight.copy_(bilinear_up_weight(num_classes))
        self.up.weight.requires_grad_(False)
        self.num_classes = num_classes

    def forward(self, x: Tensor) -> Tensor:
        return self.seg(self.base(x))

    def up_log_softmax(self, x: Tensor) -> Tensor:
        """The original's first output: log-softmax of the bilinear up-sampling (8x the logit size)."""
        return torch.log_softmax(self.up(self(x)), dim=1)
