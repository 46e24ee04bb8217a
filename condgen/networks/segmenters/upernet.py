"""UperNet-ResNet101 of CSAILVision/semantic-segmentation-pytorch (ADE20K, 150 classes): two weight files.

Architecture facts (fixture notes, no original code). Encoder: ResNet-101 with CSAIL's deep stem (3x3 convs
3 -> 64 stride 2, 64 -> 64, 64 -> 128, each + BN + ReLU, keys ``conv1/bn1 ... conv3/bn3``), a 3x3/2 max-pool
in floor mode, then torchvision bottleneck stages (keys ``layerN.i.{conv1..3,bn1..3,downsample.{0,1}}``, no
fc) of strides 4/8/16/32; it returns the four stage outputs. Decoder (UPerNet, fpn_dim 512): a pyramid
pooling module on the last stage (adaptive average pools 1, 2, 3, 6, each bilinearly resized back and then a
1x1 conv + BN + ReLU; concatenated with the stage and fused by a 3x3 conv + BN + ReLU), an FPN (1x1 lateral
conv + BN + ReLU, top-down bilinear sum, 3x3 conv + BN + ReLU per level), the four levels resized to the 1/4
level, concatenated, a 3x3 conv + BN + ReLU and a 1x1 classifier: raw logits at ceil(ceil(H/2)/2) x
ceil(ceil(W/2)/2). (The original eval path resizes them to the image and applies a softmax.)

Both released files' keys are condgen's keys. The original sync-BN stores three extra buffers per BN
(``_tmp_running_mean``, ``_tmp_running_var``, ``_running_iter``): `SYNCBN_EXTRAS` are dropped when present
and ``num_batches_tracked`` is optional; everything else loads strictly.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchvision.models.resnet import Bottleneck

RENAME = {"module.": ""}
SYNCBN_EXTRAS = ("_tmp_running_mean", "_tmp_running_var", "_running_iter")
LAYERS = (3, 4, 23, 3)
POOL_SCALES = (1, 2, 3, 6)
FPN_INPLANES = (256, 512, 1024, 2048)


def _conv3x3_bn_relu(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU())


def _conv1x1_bn_relu(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU())


class ResNetEncoder(nn.Module):
    """ResNet-101 with the deep stem: image -> [layer1, layer2, layer3, layer4] feature maps."""

    def __init__(self, layers: tuple[int, ...] = LAYERS):
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(3, 64, 3, 2, 1, bias=False), nn.BatchNorm2d(64)
        self.conv2, self.bn2 = nn.Conv2d(64, 64, 3, 1, 1, bias=False), nn.BatchNorm2d(64)
        self.conv3, self.bn3 = nn.Conv2d(64, 128, 3, 1, 1, bias=False), nn.BatchNorm2d(128)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        cin = 128
        for i, (n, planes) in enumerate(zip(layers, (64, 128, 256, 512), strict=True)):
            stride = 1 if i == 0 else 2
            cout = planes * Bottleneck.expansion
            down = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))
            blocks = [Bottleneck(cin, planes, stride, down)] + [
                Bottleneck(cout, planes) for _ in range(n - 1)
            ]
            self.add_module(f"layer{i + 1}", nn.Sequential(*blocks))
            cin = cout

    def forward(self, x: Tensor) -> list[Tensor]:
        x = F.relu(self.bn1(self.conv1(x)))
        x = F.relu(self.bn2(self.conv2(x)))
        x = self.maxpool(F.relu(self.bn3(self.conv3(x))))
        out = []
        for layer in (self.layer1, self.layer2, self.layer3, self.layer4):
            x = layer(x)
            out.append(x)
        return out


class UPerNetDecoder(nn.Module):
    """PPM + FPN head: the four encoder maps -> raw logits at the 1/4 level."""

    def __init__(
        self,
        num_classes: int = 150,
        fc_dim: int = 2048,
        fpn_dim: int = 512,
        pool_scales: tuple[int, ...] = POOL_SCALES,
        fpn_inplanes: tuple[int, ...] = FPN_INPLANES,
    ):
        super().__init__()
        self.ppm_pooling = nn.ModuleList(nn.AdaptiveAvgPool2d(s) for s in pool_scales)
        self.ppm_conv = nn.ModuleList(_conv1x1_bn_relu(fc_dim, 512) for _ in pool_scales)
        self.ppm_last_conv = _conv3x3_bn_relu(fc_dim + len(pool_scales) * 512, fpn_dim)
        self.fpn_in = nn.ModuleList(_conv1x1_bn_relu(c, fpn_dim) for c in fpn_inplanes[:-1])
        self.fpn_out = nn.ModuleList(
            nn.Sequential(_conv3x3_bn_relu(fpn_dim, fpn_dim)) for _ in fpn_inplanes[:-1]
        )
        self.conv_last = nn.Sequential(
            _conv3x3_bn_relu(len(fpn_inplanes) * fpn_dim, fpn_dim), nn.Conv2d(fpn_dim, num_classes, 1)
        )

    def forward(self, feats: list[Tensor]) -> Tensor:
        conv5 = feats[-1]
        size = conv5.shape[-2:]
        ppm = [conv5] + [
            conv(F.interpolate(pool(conv5), size, mode="bilinear", align_corners=False))
            for pool, conv in zip(self.ppm_pooling, self.ppm_conv, strict=True)
        ]
        f = self.ppm_last_conv(torch.cat(ppm, 1))
        levels = [f]
        for i in reversed(range(len(feats) - 1)):
            lateral = self.fpn_in[i](feats[i])
            f = lateral + F.interpolate(f, lateral.shape[-2:], mode="bilinear", align_corners=False)
            levels.append(self.fpn_out[i](f))
        levels.reverse()
        size = levels[0].shape[-2:]
        fused = [levels[0]] + [
            F.interpolate(x, size, mode="bilinear", align_corners=False) for x in levels[1:]
        ]
        return self.conv_last(torch.cat(fused, 1))


class UperNet(nn.Module):
    """Encoder + decoder: image -> raw logits at 1/4 resolution (the decoder's last conv, before softmax)."""

    def __init__(self, num_classes: int = 150):
        super().__init__()
        self.encoder, self.decoder = ResNetEncoder(), UPerNetDecoder(num_classes)
        self.num_classes = num_classes

    def forward(self, x: Tensor) -> Tensor:
        return self.decoder(self.encoder(x))

    def softmax_at(self, x: Tensor, size: tuple[int, int]) -> Tensor:
        """The original eval output: logits resized to `size` (bilinear), softmax over classes."""
        logits = F.interpolate(self(x), size, mode="bilinear", align_corners=False)
        return torch.softmax(logits, dim=1)
