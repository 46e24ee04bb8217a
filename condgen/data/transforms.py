"""The official preprocessing modes (SPADE `data/base_dataset.py`): resize_and_crop, fixed, none, + flip.

One `Params` (resize, crop box, flip) is drawn per item from the torch RNG (so DataLoader worker seeds make
it reproducible) and applied to label, instance and photo alike: photos BICUBIC, ids NEAREST, as official.
Deviations: crops follow `aspect_ratio` (official crops are always square, i.e. aspect 1 only), and
non-train splits crop the centre (official test crops are whole images because load_size == crop_size).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image
from torch import Tensor

PREPROCESS_MODES = ("resize_and_crop", "fixed", "none")


@dataclass(frozen=True)
class Params:
    """What to do to one item: resize to `resize` (w, h), crop `crop` (left, top, w, h), mirror if `flip`."""

    resize: tuple[int, int] | None
    crop: tuple[int, int, int, int] | None
    flip: bool


def check_preprocess(preprocess: str, crop_size: int, load_size: int | None) -> None:
    """Raise a ValueError naming the bad option; called by every dataset constructor."""
    if preprocess not in PREPROCESS_MODES:
        raise ValueError(f"preprocess={preprocess!r}; choose one of {', '.join(PREPROCESS_MODES)}")
    if crop_size < 1:
        raise ValueError(f"crop_size={crop_size} must be positive")
    if preprocess == "resize_and_crop" and load_size is not None and load_size < crop_size:
        raise ValueError(
            f"load_size={load_size} is smaller than crop_size={crop_size}; resize_and_crop needs "
            "load_size >= crop_size (official: 286 for a 256 crop)"
        )


def default_load_size(crop_size: int, train: bool) -> int:
    """Official 286 for a 256 crop when training (scaled for other crops), crop_size otherwise."""
    return round(crop_size * 286 / 256) if train else crop_size


def sample_params(
    *,
    preprocess: str,
    crop_size: int,
    load_size: int,
    aspect_ratio: float,
    random_crop: bool,
    flip: bool,
) -> Params:
    """Draw one item's resize/crop/flip from the torch RNG (x, then y, then flip, as official)."""
    crop_w, crop_h = crop_size, round(crop_size / aspect_ratio)
    resize = crop = None
    if preprocess == "resize_and_crop":
        resize = (load_size, round(load_size / aspect_ratio))
        room_x, room_y = max(0, resize[0] - crop_w), max(0, resize[1] - crop_h)
        if random_crop:
            x, y = (int(torch.randint(0, r + 1, ())) for r in (room_x, room_y))
        else:
            x, y = room_x // 2, room_y // 2
        crop = (x, y, crop_w, crop_h)
    elif preprocess == "fixed":
        resize = (crop_w, crop_h)
    do_flip = bool(torch.rand(()) < 0.5) if flip else False
    return Params(resize, crop, do_flip)


def apply(img: Image.Image, params: Params, *, ids: bool) -> Image.Image:
    """Apply `params` to one PIL image: NEAREST for id maps (`ids=True`), BICUBIC for photos."""
    if params.resize is not None and img.size != params.resize:
        img = img.resize(params.resize, Image.NEAREST if ids else Image.BICUBIC)
    if params.crop is not None:
        x, y, w, h = params.crop
        img = img.crop((x, y, x + w, y + h))
    if params.flip:
        img = img.transpose(Image.FLIP_LEFT_RIGHT)
    return img


def ids_to_tensor(img: Image.Image) -> Tensor:
    """(1, H, W) int64 ids: exact, like the official ToTensor() * 255 for 8-bit maps."""
    return torch.from_numpy(np.asarray(img).astype(np.int64, copy=True))[None]


def image_to_tensor(img: Image.Image) -> Tensor:
    """(3, H, W) float in [-1, 1] (official ToTensor + Normalize(0.5, 0.5))."""
    arr = torch.from_numpy(np.asarray(img, dtype=np.uint8).copy())
    return arr.permute(2, 0, 1).float().div_(127.5).sub_(1.0)
