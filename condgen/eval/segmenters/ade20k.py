"""ADE20K: CSAIL's UperNet-ResNet101 (encoder and decoder files), ADE20K ids -> UperNet's 150 classes,
and the named protocols `csail` (default, today's files) and `csail2019` (the 2019 files)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from condgen.eval.segmenters.protocol import IGNORE, SegProtocol
from condgen.eval.segmenters.registry import SegmenterSpec, _paper_builder, _state_dict, register_segmenter
from condgen.weights import WeightFile, declare


def _ade20k_classes(label: Tensor) -> Tensor:
    """ADE20K ids as condgen feeds them (0 'other', 1..150) -> UperNet's 0..149; 'other' is ignored."""
    label = label.long()
    return torch.where(label == 0, torch.full_like(label, IGNORE), label - 1)


def upernet_network(weights: Any, *, legacy_interp: bool = False) -> nn.Module:
    """CSAIL's UperNet-ResNet101, 150 classes, from a pair (encoder, decoder) of weights (no MSC option)."""
    from condgen.networks.segmenters import load_strict, upernet

    if isinstance(weights, (str, Path, Mapping)) or len(weights) != 2:
        raise ValueError("upernet101_ade20k takes a pair of weights: (encoder, decoder)")
    net = upernet.UperNet(150)
    for part, w in zip(("encoder", "decoder"), weights, strict=True):
        sd, where = _state_dict(w, f"UperNet101 {part} weights")
        load_strict(
            getattr(net, part), sd, rename=upernet.RENAME, drop_suffixes=upernet.SYNCBN_EXTRAS, what=where
        )
    return net


ADE20K_PROTOCOLS = (
    SegProtocol(
        "csail",
        image_size="csail:256",
        labels="generated",
        average="all",
        preprocess="upernet_imagenet",
        resize_filter="bilinear",
        reproduces="the CSAIL recipe with today's ade20k-resnet101-upernet files (as OASIS #17 re-measured: "
        "42.76 for OASIS against 48.8 reported)",
        description="CSAIL ValDataset rule (short side 256, max 1000, multiple of 32, PIL bilinear), single "
        "scale, RGB/255 ImageNet mean/std, softmax at the label size, mean over all 150 classes",
    ),
    SegProtocol(
        "csail2019",
        image_size="csail:256",
        labels="generated",
        average="all",
        preprocess="upernet_bgr2019",
        resize_filter="bilinear",
        reproduces="SPADE's ADE20K numbers (SPADE 38.5, CC-FPSE 43.7) with the 2019 "
        "baseline-resnet101-upernet files",
        description="the same recipe with the pre-2019-08 preprocessing: BGR 0..255 minus "
        "(102.98, 115.95, 122.77); only for the old files",
    ),
)

register_segmenter(
    SegmenterSpec(
        name="upernet101_ade20k",
        datasets=("ADE20K",),
        num_classes=150,
        input_size=(256, 256),
        label_remap=_ade20k_classes,
        weights=tuple(
            declare(
                WeightFile(
                    f"UperNet-ResNet101 ADE20K {part}",
                    (f"ade20k-resnet101-upernet-{part}_epoch_50.pth",),  # renamed: both are *_epoch_50.pth
                    f"http://sceneparsing.csail.mit.edu/model/pytorch/ade20k-resnet101-upernet/{part}_epoch_50.pth",
                    None,
                    size=f"≈ {size} (not measured, no checksum published)",
                    name=f"upernet101_ade20k_{part}",
                    group="upernet101_ade20k",
                    used_by="segmenter:upernet101_ade20k",
                )
            )
            for part, size in (("encoder", "171 MB"), ("decoder", "163 MB"))
        ),
        builder=_paper_builder,
        protocol="SPADE: CSAIL UperNet-R101, imgSizes (256,) single scale (OASIS #17); protocols csail "
        "(default, today's files), csail2019 (the 2019 files)",
        protocols=ADE20K_PROTOCOLS,
        network=upernet_network,
    )
)
