"""How images reach a feature extractor: the resize step as a named, recorded protocol choice.

Parmar et al. (CVPR 2022, clean-fid) showed that the resize filter alone moves FID by several points, so every
feature metric records which of these it used (the metrics file's `features.resize`):

- `legacy_tf`: torch-fidelity's TF1-compatible bilinear (no antialiasing), what its Inception, DINOv2 and CLIP
  extractors do and what the published FIDs used;
- `clean`: each channel as a float32 PIL image, PIL bicubic (antialiased when shrinking), clipped to [0, 255]:
  clean-fid's "clean" mode;
- `torch_bicubic`: `F.interpolate(mode="bicubic")` on [0, 1] images without antialiasing: the CMMD authors'
  PyTorch embedding path.

All take uint8 (b, 3, H, W) and return float32 on the 0..255 scale.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

RESIZE_MODES = {
    "legacy_tf": "torch-fidelity's TF1-compatible bilinear (no antialias)",
    "clean": "PIL bicubic per channel on float32, antialiased, clipped to [0, 255] (clean-fid)",
    "torch_bicubic": "torch bicubic on [0, 1] images, no antialias (CMMD reference port)",
}


def check_resize(mode: str) -> str:
    """`mode` if it is a known resize mode, else a ValueError listing them."""
    if mode not in RESIZE_MODES:
        raise ValueError(f"resize={mode!r}; choose one of {', '.join(RESIZE_MODES)}")
    return mode


def resize_images(img: Tensor, size: tuple[int, int], mode: str) -> Tensor:
    """uint8 (b, 3, H, W) -> float32 (b, 3, *size) on the 0..255 scale, resized as `mode` says."""
    if img.dtype != torch.uint8 or img.ndim != 4:
        raise TypeError(f"resize_images takes uint8 (b, c, H, W) images, got {img.dtype} {tuple(img.shape)}")
    check_resize(mode)
    size = (int(size[0]), int(size[1]))
    if mode == "legacy_tf":
        from torch_fidelity.interpolate_compat_tensorflow import interpolate_bilinear_2d_like_tensorflow1x

        return interpolate_bilinear_2d_like_tensorflow1x(img.float(), size=size, align_corners=False)
    if mode == "torch_bicubic":
        unit = F.interpolate(img.float() / 255.0, size=size, mode="bicubic", align_corners=False)
        return unit * 255.0
    return _pil_bicubic(img, size)


def _pil_bicubic(img: Tensor, size: tuple[int, int]) -> Tensor:
    from PIL import Image

    h, w = size
    planes = img.cpu().numpy().astype(np.float32)
    out = np.empty((*planes.shape[:2], h, w), np.float32)
    for b in range(planes.shape[0]):
        for c in range(planes.shape[1]):
            # PIL's size is (width, height); mode 'F' keeps the filter's output unquantised
            resized = Image.fromarray(planes[b, c], mode="F").resize((w, h), Image.BICUBIC)
            out[b, c] = np.asarray(resized, np.float32)
    return torch.from_numpy(out.clip(0, 255)).to(img.device)
