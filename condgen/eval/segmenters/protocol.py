"""Segmenter protocols and preprocessing: the named ways of scoring (`SegProtocol`) and the original
evaluation preprocessing of each paper segmenter (uint8 RGB -> network input, `PREPROCESS`)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from condgen.eval.miou import AVERAGING

IGNORE = 255
IMAGE_SIZES = ("entry", "generated", "label")  # or 'long_side:N', 'csail:N', 'HxW'


@dataclass(frozen=True)
class SegProtocol:
    """One named way of scoring with a segmenter; every field changes the numbers.

    Args:
        name: the protocol's name (`load_segmenter("deeplabv2_cocostuff:fullres")`).
        image_size: the size the image is fed at: 'entry' (the entry's `input_size`, float resize: the
            landscape segmenter), 'generated' (as generated, no resize), 'label' (the size of the labels it is
            scored against), 'long_side:N', 'csail:N' (CSAIL's ValDataset rule: short side N, long side at
            most 1000, both rounded up to a multiple of 32) or 'HxW' (e.g. '1024x2048').
        labels: 'generated' (the label map at the generated resolution, nearest-resized by the dataset) or
            'full' (the original label file at its own resolution; needs the dataset).
        average: the class-averaging rule of mIoU ('gt', 'gt_or_pred', 'all'; see `condgen.eval.miou`).
        preprocess: a `PREPROCESS` name (uint8 RGB -> network input), None for networks taking [-1, 1].
        resize_filter: PIL filter for a resized uint8 image ('bicubic', 'bilinear').
        reproduces: the published numbers this protocol reproduces, and whose.
        description: one line on what it is.
    """

    name: str
    image_size: str = "entry"
    labels: str = "generated"
    average: str = "gt_or_pred"
    preprocess: str | None = None
    resize_filter: str = "bicubic"
    reproduces: str = ""
    description: str = ""

    def __post_init__(self) -> None:
        if self.average not in AVERAGING:
            raise ValueError(f"protocol {self.name!r}: average={self.average!r}, choose one of {AVERAGING}")
        if self.labels not in ("generated", "full"):
            raise ValueError(f"protocol {self.name!r}: labels={self.labels!r}, choose 'generated' or 'full'")
        if self.preprocess is not None and self.preprocess not in PREPROCESS:
            raise ValueError(f"protocol {self.name!r}: no preprocessing {self.preprocess!r}")

    def record(self) -> dict:
        return dataclasses.asdict(self)

    def input_size(
        self, image_hw: Sequence[int], label_hw: Sequence[int], entry: Any = None
    ) -> tuple[int, int]:
        """(H, W) the network is fed at, for an image of `image_hw` scored against labels of `label_hw`."""
        h, w = int(image_hw[0]), int(image_hw[1])
        rule = self.image_size
        if rule == "entry":
            return tuple(entry) if entry is not None else (h, w)
        if rule == "generated":
            return h, w
        if rule == "label":
            return int(label_hw[0]), int(label_hw[1])
        if rule.startswith("long_side:"):
            n = int(rule.split(":")[1])
            scale = n / max(h, w)
            return max(1, round(h * scale)), max(1, round(w * scale))
        if rule.startswith("csail:"):
            return csail_size(h, w, int(rule.split(":")[1]))
        if "x" in rule:
            a, b = rule.split("x")
            return int(a), int(b)
        raise ValueError(f"protocol {self.name!r}: unknown image_size rule {rule!r}")


DEFAULT_PROTOCOL = SegProtocol(
    "default", description="the entry's input size (bilinear), labels at the generated resolution"
)


def csail_size(h: int, w: int, short: int, max_size: int = 1000, multiple: int = 32) -> tuple[int, int]:
    """CSAIL ValDataset's size rule: short side `short` (long side at most `max_size`), rounded UP to 32."""
    scale = min(short / min(h, w), max_size / max(h, w))
    th, tw = int(h * scale), int(w * scale)
    return ((th - 1) // multiple + 1) * multiple, ((tw - 1) // multiple + 1) * multiple


# ------------------------------------------------------------------------------------ preprocessing
# Every function takes uint8 RGB images (b, 3, H, W) and returns the float32 tensor the network receives
# (the original evaluation preprocessing, matched exactly by tests/eval/test_segmenter_parity.py).
DEEPLAB_MEAN_BGR = (104.008, 116.669, 122.675)
UPERNET_MEAN_STD_RGB = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
UPERNET_MEAN_BGR_2019 = (102.9801, 115.9465, 122.7717)
DRN_MEAN_STD_RGB = (
    (0.29010095242892997, 0.32808144844279574, 0.28696394422942517),
    (0.1829540508368939, 0.18656561047509476, 0.18447508988480435),
)


def _check_uint8(img: Tensor) -> None:
    if img.dtype != torch.uint8 or img.dim() != 4 or img.shape[1] != 3:
        raise TypeError(f"expected uint8 RGB images (b, 3, H, W), got {img.dtype} {tuple(img.shape)}")


def _column(values: Sequence[float], dtype: torch.dtype, device: Any) -> Tensor:
    return torch.tensor(values, dtype=dtype, device=device).view(1, 3, 1, 1)


def preprocess_deeplab(img: Tensor) -> Tensor:
    """DeepLabV2 (kazuto1011): BGR float 0..255 minus the BGR mean (104.008, 116.669, 122.675), no std."""
    _check_uint8(img)
    bgr = img.flip(1).double()
    return (bgr - _column(DEEPLAB_MEAN_BGR, torch.float64, img.device)).float()


def preprocess_upernet(img: Tensor) -> Tensor:
    """UperNet, today's (converted, 2019-08) weights: RGB / 255, ImageNet mean / std."""
    _check_uint8(img)
    mean, std = UPERNET_MEAN_STD_RGB
    x = img.float() / 255.0
    return (x - _column(mean, torch.float32, img.device)) / _column(std, torch.float32, img.device)


def preprocess_upernet_2019(img: Tensor) -> Tensor:
    """UperNet, the pre-2019-08 files (SPADE's era): BGR float 0..255 minus (102.98, 115.95, 122.77)."""
    _check_uint8(img)
    return img.flip(1).float() - _column(UPERNET_MEAN_BGR_2019, torch.float32, img.device)


def preprocess_drn(img: Tensor) -> Tensor:
    """DRN Cityscapes: RGB / 255, minus the dataset mean, divided by its std (info.json, float32)."""
    _check_uint8(img)
    mean, std = DRN_MEAN_STD_RGB
    x = img.float() / 255.0
    return (x - _column(mean, torch.float32, img.device)) / _column(std, torch.float32, img.device)


PREPROCESS: dict[str, Callable[[Tensor], Tensor]] = {
    "deeplab_bgr": preprocess_deeplab,
    "upernet_imagenet": preprocess_upernet,
    "upernet_bgr2019": preprocess_upernet_2019,
    "drn_cityscapes": preprocess_drn,
}
_PIL_FILTERS = {"bicubic": Image.BICUBIC, "bilinear": Image.BILINEAR, "nearest": Image.NEAREST}


def resize_uint8(img: Tensor, size: Sequence[int], filter: str = "bicubic") -> Tensor:
    """Resize uint8 RGB images (b, 3, H, W) to (H', W') with PIL, as image files would be resized."""
    _check_uint8(img)
    out = []
    for x in img.cpu():
        pil = Image.fromarray(x.permute(1, 2, 0).numpy())
        pil = pil.resize((int(size[1]), int(size[0])), _PIL_FILTERS[filter])
        out.append(torch.from_numpy(np.asarray(pil).copy()).permute(2, 0, 1))
    return torch.stack(out).to(img.device)


def upernet_valdataset(img: Tensor, short: int, max_size: int = 1000, multiple: int = 32) -> Tensor:
    """CSAIL's ValDataset path on uint8 RGB images: size rule, PIL bilinear, today's normalisation."""
    size = csail_size(img.shape[-2], img.shape[-1], short, max_size, multiple)
    return preprocess_upernet(resize_uint8(img, size, "bilinear"))
