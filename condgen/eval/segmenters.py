"""The segmenter registry: which network scores mIoU for which dataset, at which size, with which labels.

Each `SegmenterSpec` states the facts that papers leave implicit (SPADE #39, #100, OASIS #5, #18): the
weight files, the input size generated images are resized to, the map from the dataset's label ids to the
segmenter's classes, and the ignore id. `load_segmenter(name)` returns a `Segmenter` that takes images in
[-1, 1] at any size and returns logits at that size, so predictions are scored against the label map at the
generated resolution (labels are never resized: CC-FPSE #4). Entries:
- `landscape`: `LandscapeSegmenter`, trained here on real synthetic landscapes (cached, no download);
- `deeplabv2_cocostuff`, `upernet101_ade20k`, `drn_d105_cityscapes`: the paper segmenters. Their weights and
  network code are not bundled: loading names the files to fetch and where to put them, then asks for the
  network code (`register_segmenter(replace(spec, builder=...))`); nothing is faked.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from condgen.eval.weights import WeightFile, hub_checkpoint_dir

IGNORE = 255


@dataclass(frozen=True)
class SegmenterSpec:
    """A registry entry.

    Args:
        name: registry key.
        datasets: dataset class names it scores by default (`segmenter_for`).
        num_classes: the segmenter's output classes.
        input_size: (H, W) generated images are resized to (bilinear, antialiased when shrinking);
            None keeps their size. Logits are resized back to the image size.
        label_remap: dataset label ids (b, H, W) -> segmenter class ids, `IGNORE` (255) for don't care.
        weights: the published files the builder needs.
        builder: `builder(spec, weight_paths, **options) -> (net, record)`; `net(img in [-1, 1])` gives
            logits; `record` is JSON-able provenance (weights' SHA-256, recipe, ...).
        protocol: one line on how the paper used it.
    """

    name: str
    datasets: tuple[str, ...]
    num_classes: int
    input_size: tuple[int, int] | None
    builder: Callable[..., tuple[nn.Module, dict]]
    label_remap: Callable[[Tensor], Tensor] | None = None
    weights: tuple[WeightFile, ...] = ()
    protocol: str = ""
    ignore_index: int = field(default=IGNORE)


SEGMENTERS: dict[str, SegmenterSpec] = {}


def register_segmenter(spec: SegmenterSpec) -> SegmenterSpec:
    """Add (or replace) a registry entry, e.g. a paper segmenter with its network code plugged in."""
    SEGMENTERS[spec.name] = spec
    return spec


def get_segmenter(name: str) -> SegmenterSpec:
    if name not in SEGMENTERS:
        close = difflib.get_close_matches(name, list(SEGMENTERS), n=3, cutoff=0.5)
        hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        raise KeyError(f"no segmenter {name!r}.{hint} Registered: {', '.join(sorted(SEGMENTERS))}")
    return SEGMENTERS[name]


def segmenter_for(dataset: Any) -> str:
    """The registry name of the default segmenter for a dataset (instance, class or class name)."""
    name = (
        dataset
        if isinstance(dataset, str)
        else (dataset.__name__ if isinstance(dataset, type) else type(dataset).__name__)
    )
    for spec in SEGMENTERS.values():
        if name in spec.datasets:
            return spec.name
    raise KeyError(
        f"no segmenter is registered for dataset {name!r}; register one with register_segmenter "
        f"or pass --segmenter none to skip mIoU"
    )


class Segmenter(nn.Module):
    """A registry entry with its loaded network: images in [-1, 1] -> logits at the images' size."""

    def __init__(self, spec: SegmenterSpec, net: nn.Module, record: dict) -> None:
        super().__init__()
        self.spec, self.net, self.record = spec, net.eval().requires_grad_(False), record

    def train(self, mode: bool = True) -> Segmenter:
        return super().train(False)  # a fixed evaluator

    def _resize(self, img: Tensor) -> Tensor:
        size = self.spec.input_size
        if size is None or tuple(img.shape[-2:]) == tuple(size):
            return img
        shrink = size[0] < img.shape[-2] or size[1] < img.shape[-1]
        return F.interpolate(img, size=size, mode="bilinear", align_corners=False, antialias=shrink)

    @torch.no_grad()
    def forward(self, img: Tensor) -> Tensor:
        """img: (b, 3, H, W) in [-1, 1] -> (b, num_classes, H, W) logits."""
        logits = self.net(self._resize(img.float()))
        if logits.shape[-2:] != img.shape[-2:]:
            logits = F.interpolate(logits, size=img.shape[-2:], mode="bilinear", align_corners=False)
        return logits

    def predict(self, img: Tensor) -> Tensor:
        """(b, H, W) class ids."""
        return self(img).argmax(1)

    def target(self, label: Tensor) -> Tensor:
        """Dataset label ids (b, 1, H, W) or (b, H, W) -> segmenter class ids (b, H, W), 255 = ignore."""
        label = label[:, 0] if label.dim() == 4 else label
        return self.spec.label_remap(label) if self.spec.label_remap is not None else label

    @torch.no_grad()
    def features(self, img: Tensor) -> Tensor:
        """(b, d) float64 image features of the network (for FID/KID in its feature space)."""
        if not hasattr(self.net, "features"):
            raise TypeError(f"segmenter {self.spec.name!r} has no feature head; use the Inception instead")
        return self.net.features(self._resize(img.float())).double()


def load_segmenter(name: str, *, weights: tuple[str | Path, ...] | None = None, **options: Any) -> Segmenter:
    """Build a registered segmenter; `weights` overrides the files' default locations (same order)."""
    spec = get_segmenter(name)
    given = tuple(weights) if weights is not None else (None,) * len(spec.weights)
    if len(given) != len(spec.weights):
        raise ValueError(f"segmenter {name!r} takes {len(spec.weights)} weight files, got {len(given)}")
    paths = [w.resolve(p) for w, p in zip(spec.weights, given, strict=True)]
    net, record = spec.builder(spec, paths, **options)
    return Segmenter(spec, net, {"name": name, **record})


# -------------------------------------------------------------------------------------------- entries
def _landscape(
    spec: SegmenterSpec, paths: list[Path], *, recipe: Any = None, cache: str | Path | None = None
) -> tuple[nn.Module, dict]:
    from condgen.eval.landscape_segmenter import LandscapeRecipe, landscape_segmenter

    recipe = recipe or LandscapeRecipe()
    if recipe.size != spec.input_size[0]:
        raise ValueError(
            f"the landscape entry's input_size is {spec.input_size}, the recipe trains at "
            f"{recipe.size}; register a copy of the entry with input_size=({recipe.size}, {recipe.size})"
        )
    return landscape_segmenter(recipe, cache=cache)


register_segmenter(
    SegmenterSpec(
        name="landscape",
        datasets=("SyntheticLandscapes",),
        num_classes=9,
        input_size=(64, 64),
        builder=_landscape,
        protocol="LandscapeSegmenter trained on real synthetic landscapes (condgen)",
    )
)


def _needs_network_code(repo: str) -> Callable[..., tuple[nn.Module, dict]]:
    def build(spec: SegmenterSpec, paths: list[Path], **options: Any) -> tuple[nn.Module, dict]:
        raise NotImplementedError(
            f"segmenter {spec.name!r}: the weights are present ({', '.join(map(str, paths))}) "
            "but condgen does "
            f"not bundle the network code ({repo}); register it with "
            f"register_segmenter(dataclasses.replace(get_segmenter({spec.name!r}), builder=my_builder))"
        )

    return build


def _dontcare_to_ignore(label_nc: int) -> Callable[[Tensor], Tensor]:
    """The dataset's don't-care channel id (`label_nc`) becomes the ignore id."""
    return lambda label: label.masked_fill(label == label_nc, IGNORE)


def _ade20k_classes(label: Tensor) -> Tensor:
    """ADE20K ids as condgen feeds them (0 'other', 1..150) -> UperNet's 0..149; 'other' is ignored."""
    label = label.long()
    return torch.where(label == 0, torch.full_like(label, IGNORE), label - 1)


# Cityscapes labelIds (0..33; 34 = license plate) -> the 19 trainIds the DRN predicts; 255 = ignored.
CITYSCAPES_TRAIN_IDS = (
    IGNORE,
    IGNORE,
    IGNORE,
    IGNORE,
    IGNORE,
    IGNORE,
    IGNORE,
    0,
    1,
    IGNORE,
    IGNORE,
    2,
    3,
    4,
    IGNORE,
    IGNORE,
    IGNORE,
    5,
    IGNORE,
    6,
    7,
    8,
    9,
    10,
    11,
    12,
    13,
    14,
    15,
    IGNORE,
    IGNORE,
    16,
    17,
    18,
    IGNORE,
)


def _cityscapes_train_ids(label: Tensor) -> Tensor:
    table = torch.tensor(CITYSCAPES_TRAIN_IDS, device=label.device)
    return table[label.long().clamp(0, len(table) - 1)]


_HUB = hub_checkpoint_dir()
register_segmenter(
    SegmenterSpec(
        name="deeplabv2_cocostuff",
        datasets=("CocoStuff",),
        num_classes=182,
        input_size=(256, 256),
        label_remap=_dontcare_to_ignore(182),
        weights=(
            WeightFile(
                "DeepLabV2-ResNet101 (MSC) COCO-Stuff 164k",
                ("deeplabv2_resnet101_msc-cocostuff164k-100000.pth",),
                "https://github.com/kazuto1011/deeplab-pytorch/releases/download/v1.0/"
                "deeplabv2_resnet101_msc-cocostuff164k-100000.pth",
                None,
            ),
        ),
        builder=_needs_network_code("kazuto1011/deeplab-pytorch, DeepLabV2_ResNet101_MSC"),
        protocol="SPADE/CC-FPSE: 256x256 generated images fed directly, labels at 256 (CC-FPSE #4)",
    )
)
register_segmenter(
    SegmenterSpec(
        name="upernet101_ade20k",
        datasets=("ADE20K",),
        num_classes=150,
        input_size=(256, 256),
        label_remap=_ade20k_classes,
        weights=tuple(
            WeightFile(
                f"UperNet-ResNet101 ADE20K {part}",
                (f"ade20k-resnet101-upernet-{part}_epoch_50.pth",),
                "http://sceneparsing.csail.mit.edu/model/pytorch/ade20k-resnet101-upernet/"
                f"{part}_epoch_50.pth "
                f"(save it as ade20k-resnet101-upernet-{part}_epoch_50.pth)",
                None,
            )
            for part in ("encoder", "decoder")
        ),
        builder=_needs_network_code(
            "CSAILVision/semantic-segmentation-pytorch (PyPI mit-semseg), UperNet-R101"
        ),
        protocol="SPADE: CSAIL UperNet-R101, imgSizes (256,) on 256x256 images (OASIS #17)",
    )
)
register_segmenter(
    SegmenterSpec(
        name="drn_d105_cityscapes",
        datasets=("Cityscapes",),
        num_classes=19,
        input_size=(256, 512),
        label_remap=_cityscapes_train_ids,
        weights=(
            WeightFile(
                "DRN-D-105 (multi-scale) Cityscapes",
                ("drn-d-105_ms_cityscapes.pth",),
                "the Google Drive link in bytedance/OMGD issue #4 (fyu/drn DRN-D-105)",
                None,
            ),
        ),
        builder=_needs_network_code("fyu/drn, DRNSeg with drn_d_105"),
        protocol="SPADE: DRN-D-105 on 512x256 outputs; labelIds -> 19 trainIds (OASIS #5/#18: sizes matter)",
    )
)
