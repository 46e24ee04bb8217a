"""OASIS's label-channel convention next to condgen's, in one place.

OASIS (the original code) feeds a one-hot map whose channel v is label value v, with value 0 the
don't-care / unlabelled class, and its discriminator predicts channel 0 = "fake", channel v + 1 = value v.
condgen's one-hot (`condgen.data.labels.encode_labels`) is `[class 0 .. label_nc - 1, don't-care?, edges?]`.
Per dataset, the two relate as follows (OASIS never uses instance edges; the OASIS gin files turn them off):

| dataset | OASIS value v | condgen channel | OASIS don't-care (value 0) is condgen channel |
|---|---|---|---|
| ADE20K | raw id 0..150 | raw id (150 classes + 1 = 151 channels) | 0 (id 0 "other") |
| COCO-Stuff | raw + 1, raw 255 -> 0 | raw id, 255 -> 182 | 182 (the don't-care channel) |
| Cityscapes | labelId 0..34 | labelId (35 channels) | 0 (labelId 0 "unlabeled") |

So the only difference is *where the don't-care channel is*: OASIS order = condgen order with condgen's
`dontcare` channel moved to the front. condgen's networks take the label map in condgen's order; the OASIS
objective (`OASISObjective.dontcare_channel`) names which condgen channel gets class weight 0, and the
converter (`condgen.convert.oasis`) permutes the original checkpoints' label-input and head channels with
`oasis_to_condgen` so that a converted network reads condgen's `seg` and its head's channel k + 1 is condgen
channel k. Nothing else in condgen knows about OASIS's order.
"""

from __future__ import annotations

import torch
from torch import Tensor

from condgen.data.labels import LabelLayout, attached_layout

# The condgen channel OASIS calls don't-care (value 0), per dataset (`label_nc` = condgen's, see above).
OASIS_DATASETS = ("ade20k", "coco", "cityscapes")


def dontcare_channel(dataset: str, label_nc: int | None = None) -> int:
    """The condgen channel that OASIS treats as don't-care (value 0) for an OASIS `--dataset_mode`."""
    if dataset == "coco":
        return 182 if label_nc is None else label_nc
    if dataset in ("ade20k", "cityscapes"):
        return 0
    raise ValueError(f"dataset {dataset!r}: OASIS defines {', '.join(OASIS_DATASETS)}")


def oasis_to_condgen(num_channels: int, dontcare: int) -> list[int]:
    """perm with `condgen_map[:, j] = oasis_map[:, perm[j]]` for label maps of `num_channels` channels.

    OASIS channel 0 (don't-care) goes to condgen channel `dontcare`; the others keep their order.
    """
    if not 0 <= dontcare < num_channels:
        raise ValueError(f"dontcare channel {dontcare} outside 0..{num_channels - 1}")
    rest = list(range(1, num_channels))
    return rest[:dontcare] + [0] + rest[dontcare:]


def condgen_to_oasis(num_channels: int, dontcare: int) -> list[int]:
    """The inverse permutation: `oasis_map[:, v] = condgen_map[:, perm[v]]`."""
    perm = oasis_to_condgen(num_channels, dontcare)
    inv = [0] * num_channels
    for j, v in enumerate(perm):
        inv[v] = j
    return inv


def to_oasis(seg: Tensor, dontcare: int) -> Tensor:
    """condgen-order one-hot (b, C, H, W) -> OASIS order (don't-care first)."""
    return seg[:, condgen_to_oasis(seg.shape[1], dontcare)]


def from_oasis(seg: Tensor, dontcare: int) -> Tensor:
    """OASIS-order one-hot (b, C, H, W) -> condgen order."""
    return seg[:, oasis_to_condgen(seg.shape[1], dontcare)]


def class_map(seg: Tensor) -> Tensor:
    """(b, H, W) int64 class channel per pixel: the first maximal channel of the one-hot.

    An instance-edge channel (condgen's last) never wins: edge pixels also have their class channel set,
    which comes first. The ids `encode_labels` attached (`LabelLayout`) when it has them: the same values,
    without a pass over every channel.
    """
    layout = attached_layout(seg)
    if isinstance(layout, LabelLayout) and layout.offset == 0 and layout.size == tuple(seg.shape[-2:]):
        return layout.ids.long()
    return seg.argmax(1)


def permute_dim(t: Tensor, perm: list[int], dim: int, offset: int = 0) -> Tensor:
    """`t` with the `len(perm)` entries of `dim` starting at `offset` reordered by `perm` (the rest kept)."""
    idx = torch.arange(t.shape[dim])
    idx[offset : offset + len(perm)] = torch.tensor(perm) + offset
    return t.index_select(dim, idx)
