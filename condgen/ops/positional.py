"""CLADE-ICPE's intra-class positional map (CLADE, TPAMI 2021, Sec. 3.3), computed from a label-id map.

For every label value present (but `skip`), each 8-connected region of that value gets, per pixel, its
offset from the region's centroid, row and column separately, each divided by the region's largest
|offset| along that axis plus 1e-5: values in (-1, 1), 0 along an axis the region has no extent in.
Channel 0 is the row offset, channel 1 the column offset; pixels of value `skip` stay 0.

How this differs from the original (`cal_connectedComponents` in CLADE's `util/cal_dist_masks.py`, an OpenCV
call per value per image in the data loader): the connected components are found here in torch for the
whole batch at once (min-label propagation over the 8 neighbours with pointer jumping), on any device, so a
converted model computes its map on the fly from the label map it is given. The arithmetic (float64
centroid and division, one rounding to float32) is the original's, so the maps agree bit for bit with the
original's on its edge cases (1-pixel lines, isolated pixels, corner-only contacts, rings).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

_NEIGHBOURS = [(dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1) if (dy, dx) != (0, 0)]


@torch.no_grad()
def connected_components(ids: Tensor) -> Tensor:
    """(N, H, W) int64: per pixel, the smallest flat index (over N*H*W) of its 8-connected equal-id region.

    Min-label propagation: every pixel takes the smallest root among itself and its equal-valued
    neighbours, then follows root pointers (pointer jumping), until nothing changes.
    """
    n, h, w = ids.shape
    numel = n * h * w
    padded_ids = F.pad(ids.long(), (1, 1, 1, 1), value=-1)  # -1 never equals a label: no wrap-around
    same = [
        padded_ids[:, 1 + dy : 1 + dy + h, 1 + dx : 1 + dx + w] == ids for dy, dx in _NEIGHBOURS
    ]
    comp = torch.arange(numel, device=ids.device).view(n, h, w)
    while True:
        padded = F.pad(comp, (1, 1, 1, 1), value=numel)
        best = comp
        for (dy, dx), eq in zip(_NEIGHBOURS, same, strict=True):
            shifted = padded[:, 1 + dy : 1 + dy + h, 1 + dx : 1 + dx + w]
            best = torch.minimum(best, torch.where(eq, shifted, numel))
        flat = best.flatten()
        for _ in range(4):  # a root pointer always lies in the same region: following it is safe
            flat = flat[flat]
        best = flat.view(n, h, w)
        if torch.equal(best, comp):
            return comp
        comp = best


@torch.no_grad()
def intra_class_positions(ids: Tensor, *, skip: int | None = 0, normalise: bool = True) -> Tensor:
    """(N, 2, H, W) float32 positional map of a label-id map (N, H, W) (module docstring).

    Args:
        ids: label values per pixel (the one-hot channel index).
        skip: the value left at 0 (the original skips 0: ADE20K's and Cityscapes' unlabelled, but on
            COCO-Stuff it is "person"); None maps every value.
        normalise: divide by the region's max |offset| + 1e-5 per axis (the original's 'norm'); False gives
            raw pixel offsets (its 'no').
    """
    if ids.dim() != 3 or ids.is_floating_point():
        raise ValueError(f"intra_class_positions: ids must be (N, H, W) integers, got {ids.dtype} "
                         f"{tuple(ids.shape)}")
    n, h, w = ids.shape
    comp = connected_components(ids).flatten()
    numel = comp.numel()
    grid = torch.meshgrid(torch.arange(h, device=ids.device, dtype=torch.float64),
                          torch.arange(w, device=ids.device, dtype=torch.float64), indexing="ij")
    count = torch.bincount(comp, minlength=numel).to(torch.float64)
    out = []
    for coord in grid:
        coord = coord.expand(n, h, w).flatten()
        centre = torch.zeros(numel, dtype=torch.float64, device=ids.device).index_add_(0, comp, coord)
        offset = coord - (centre / count.clamp_min(1))[comp]
        if normalise:
            extent = torch.zeros_like(centre).scatter_reduce_(0, comp, offset.abs(), "amax")
            offset = offset / (extent[comp] + 1e-5)
        out.append(offset.view(n, h, w))
    dist = torch.stack(out, 1)
    if skip is not None:
        dist = dist.masked_fill((ids == skip).unsqueeze(1), 0.0)
    return dist.to(torch.float32)
