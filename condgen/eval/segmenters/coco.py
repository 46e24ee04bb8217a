"""COCO-Stuff: DeepLabV2-ResNet101-MSC (kazuto1011/deeplab-pytorch): its weight file, the don't-care id
as the ignore id, and the named protocols `ccfpse` (default), `fullres`, `imaginaire`."""

from __future__ import annotations

from typing import Any

from torch import nn

from condgen.eval.segmenters.protocol import SegProtocol
from condgen.eval.segmenters.registry import (
    SegmenterSpec,
    _dontcare_to_ignore,
    _paper_builder,
    _state_dict,
    register_segmenter,
)
from condgen.weights import WeightFile, declare


def deeplabv2_network(weights: Any, *, legacy_interp: bool = False) -> nn.Module:
    """DeepLabV2-ResNet101-MSC, 182 classes; `legacy_interp` scales the MSC inputs as torch <= 1.4 did."""
    from condgen.networks.segmenters import deeplabv2, load_strict

    sd, where = _state_dict(weights, "DeepLabV2 COCO-Stuff weights")
    return load_strict(
        deeplabv2.DeepLabV2MSC(182, legacy_interp=legacy_interp), sd, rename=deeplabv2.RENAME, what=where
    )


COCO_PROTOCOLS = (
    SegProtocol(
        "ccfpse",
        image_size="generated",
        labels="generated",
        average="gt",
        preprocess="deeplab_bgr",
        reproduces="CC-FPSE's COCO-Stuff numbers (CC-FPSE 41.6 mIoU, 70.7 accuracy; CC-FPSE #4: 'same "
        "repos and weights as SPADE'), so SPADE's published 37.4 as far as its authors' description goes",
        description="the generated 256x256 image fed directly, labels nearest-resized to 256, "
        "mean over classes present in the ground truth (DeepLab's own rule)",
    ),
    SegProtocol(
        "fullres",
        image_size="label",
        labels="full",
        average="gt",
        preprocess="deeplab_bgr",
        resize_filter="bicubic",
        reproduces="the later re-evaluations of GauGAN/SPADE at full resolution (38.78)",
        description="the generated image bicubic-upsampled to the original label size, scored against "
        "the full-resolution label file, mean over classes present in the ground truth",
    ),
    SegProtocol(
        "imaginaire",
        image_size="long_side:512",
        labels="generated",
        average="all",
        preprocess="deeplab_bgr",
        resize_filter="bilinear",
        reproduces="NVlabs/imaginaire's COCO-Stuff evaluation wrapper (long side 512, BGR mean)",
        description="the image resized to long side 512 (bilinear, assumed), logits back to the "
        "generated label size, mean over all 182 classes (absent classes count 0)",
    ),
)

register_segmenter(
    SegmenterSpec(
        name="deeplabv2_cocostuff",
        datasets=("CocoStuff",),
        num_classes=182,
        input_size=(256, 256),
        label_remap=_dontcare_to_ignore(182),
        weights=(
            declare(
                WeightFile(
                    "DeepLabV2-ResNet101 (MSC) COCO-Stuff 164k",
                    ("deeplabv2_resnet101_msc-cocostuff164k-100000.pth",),
                    "https://github.com/kazuto1011/deeplab-pytorch/releases/download/v1.0/"
                    "deeplabv2_resnet101_msc-cocostuff164k-100000.pth",
                    None,
                    size="≈ 224 MB (55.9 M float32; not measured, no checksum published)",
                    name="deeplabv2_cocostuff",
                    used_by="segmenter:deeplabv2_cocostuff",
                )
            ),
        ),
        builder=_paper_builder,
        protocol="SPADE/CC-FPSE: DeepLabV2-ResNet101-MSC (kazuto1011/deeplab-pytorch), named protocols "
        "ccfpse (default), fullres, imaginaire",
        protocols=COCO_PROTOCOLS,
        network=deeplabv2_network,
    )
)
