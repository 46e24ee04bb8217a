"""Cityscapes: DRN-D-105 (fyu/drn), labelIds -> the 19 trainIds, DRN's own up-sampling head, and the
named protocols `2048x1024` (default, OASIS #18) and `512x256`."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from condgen.eval.segmenters.protocol import IGNORE, SegProtocol
from condgen.eval.segmenters.registry import SegmenterSpec, _paper_builder, _state_dict, register_segmenter
from condgen.weights import WeightFile, declare

# Cityscapes labelIds (0..33; 34 = license plate) -> the 19 trainIds the DRN predicts; every other id is
# ignored (255). The labelIds of the 19 classes, in trainId order (road, sidewalk, building, ..., bicycle):
TRAINED_LABEL_IDS = (7, 8, 11, 12, 13, 17, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 31, 32, 33)
CITYSCAPES_TRAIN_IDS = tuple(
    TRAINED_LABEL_IDS.index(i) if i in TRAINED_LABEL_IDS else IGNORE for i in range(35)
)


def _cityscapes_train_ids(label: Tensor) -> Tensor:
    table = torch.tensor(CITYSCAPES_TRAIN_IDS, device=label.device)
    return table[label.long().clamp(0, len(table) - 1)]


def drn_network(weights: Any, *, legacy_interp: bool = False) -> nn.Module:
    """DRN-D-105 with its seg head, 19 trainIds (no MSC option)."""
    from condgen.networks.segmenters import drn, load_strict

    sd, where = _state_dict(weights, "DRN-D-105 Cityscapes weights")
    return load_strict(drn.DRNSeg(19), sd, rename=drn.RENAME, what=where)


def _drn_head(net: nn.Module, logits: Tensor, size: tuple[int, int]) -> Tensor:
    """DRN's own up-sampling (the frozen bilinear transposed conv, 8x); resized only when 8x != size."""
    return net.up(logits)


CITYSCAPES_PROTOCOLS = (
    SegProtocol(
        "2048x1024",
        image_size="1024x2048",
        labels="full",
        average="gt_or_pred",
        preprocess="drn_cityscapes",
        resize_filter="bicubic",
        reproduces="SPADE's Cityscapes numbers (SPADE 62.3, CC-FPSE 65.5): OASIS #18 needed the "
        "generated images upsampled to 2048x1024 to reproduce them",
        description="the generated image bicubic-upsampled to 2048x1024, scored against the "
        "full-resolution labelIds -> 19 trainIds, DRN's up-sampling, mean over classes in GT or prediction",
    ),
    SegProtocol(
        "512x256",
        image_size="generated",
        labels="generated",
        average="gt_or_pred",
        preprocess="drn_cityscapes",
        reproduces="no published number exactly (OASIS #5 evaluates at 512x256 but with an unreleased "
        "DRN); the cheap protocol at the generated size",
        description="the generated 512x256 image fed directly, labels nearest-downsampled to 512x256",
    ),
)


register_segmenter(
    SegmenterSpec(
        name="drn_d105_cityscapes",
        datasets=("Cityscapes",),
        num_classes=19,
        input_size=(256, 512),
        label_remap=_cityscapes_train_ids,
        weights=(
            declare(
                WeightFile(
                    "DRN-D-105 (multi-scale) Cityscapes",
                    ("drn-d-105_ms_cityscapes.pth",),
                    # Google Drive's direct-download form of the file the project page links to
                    "https://drive.usercontent.google.com/download?id=1O-BH64Rvc40cT_SQrvbnebTWRwC74TJp"
                    "&export=download&confirm=t",
                    None,
                    size="≈ 217 MB (not measured; md5 22f6aac9dc4dcf255bad997463fd40d0 per lmxyy/sige)",
                    name="drn_d105_cityscapes",
                    page="http://go.yf.io/drn-cityscapes-models (fyu/drn DRN-D-105)",
                    used_by="segmenter:drn_d105_cityscapes",
                )
            ),
        ),
        builder=_paper_builder,
        protocol="SPADE: DRN-D-105 (fyu/drn); labelIds -> 19 trainIds; protocols 2048x1024 (default, "
        "OASIS #18), 512x256 (OASIS #5: sizes matter)",
        protocols=CITYSCAPES_PROTOCOLS,
        head=_drn_head,
        network=drn_network,
    )
)
