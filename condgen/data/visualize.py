"""Colourising label maps for sample grids and docs: `colorize(label, palette)`.

`default_palette(n)` is the usual bit-interleaved (Pascal VOC style) colour map, so neighbouring ids get
clearly different colours; datasets with their own colours (synthetic landscapes) pass theirs.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor


def default_palette(n: int) -> list[tuple[int, int, int]]:
    """`n` distinct RGB colours: the bits of each id spread over the high bits of R, G and B."""
    out = []
    for i in range(n):
        r = g = b = 0
        c = i
        for shift in range(7, -1, -1):
            r |= (c & 1) << shift
            g |= ((c >> 1) & 1) << shift
            b |= ((c >> 2) & 1) << shift
            c >>= 3
            if c == 0:
                break
        out.append((r, g, b))
    return out


def colorize(label: Tensor | np.ndarray, palette: Sequence[Sequence[int]] | None = None) -> Tensor:
    """Integer ids -> RGB in [-1, 1] (the image range, so grids can mix labels and photos).

    Args:
        label: (H, W), (1, H, W) or (b, 1, H, W) ids; ids beyond the palette (e.g. don't care) are black.
        palette: one (r, g, b) 0..255 per id; default `default_palette(256)`.
    Returns:
        (3, H, W) or (b, 3, H, W) float tensor.
    """
    label = torch.as_tensor(np.asarray(label) if isinstance(label, np.ndarray) else label).long()
    batched = label.dim() == 4
    if label.dim() == 4:
        label = label[:, 0]
    elif label.dim() == 3:
        label = label[0]
    table = torch.tensor(list(palette) if palette is not None else default_palette(256), dtype=torch.float32)
    table = torch.cat([table, torch.zeros(1, 3)])  # ids beyond the palette -> black
    ids = label.clamp(0, len(table) - 1).masked_fill((label < 0) | (label >= len(table) - 1), len(table) - 1)
    rgb = table[ids.to("cpu")] / 127.5 - 1  # (..., H, W, 3)
    return rgb.permute(0, 3, 1, 2) if batched else rgb.permute(2, 0, 1)
