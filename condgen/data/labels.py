"""Label-map encoding: integer ids -> the generator's one-hot input, in the official channel order.

Channel order (matters for official checkpoints): `[class 0 .. label_nc-1, dontcare?, instance-edge?]`.
`semantic_nc` is computed here and nowhere else.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def semantic_nc(label_nc: int, contain_dontcare_label: bool, instance_edges: bool) -> int:
    """Number of generator/discriminator label channels (COCO: 182 + 1 + 1 = 184)."""
    return label_nc + int(contain_dontcare_label) + int(instance_edges)


def get_edges(instance: Tensor) -> Tensor:
    """Instance boundary map: 1 where a pixel differs from its left/right/up/down neighbour.

    Args:
        instance: (b, 1, H, W) integer instance ids (any integer dtype).
    Returns:
        (b, 1, H, W) float 0/1, both sides of every boundary marked (as the official `get_edges`).
    """
    # out of place (padded differences, no sliced `|=`), so that an exported graph can compute it too
    dx = (instance[..., :, 1:] != instance[..., :, :-1]).float()
    dy = (instance[..., 1:, :] != instance[..., :-1, :]).float()
    edge = F.pad(dx, (1, 0)) + F.pad(dx, (0, 1)) + F.pad(dy, (0, 0, 1, 0)) + F.pad(dy, (0, 0, 0, 1))
    return (edge > 0).float()


def encode_labels(
    labels: Tensor,
    label_nc: int,
    *,
    contain_dontcare_label: bool = False,
    instance: Tensor | None = None,
    instance_edges: bool | None = None,
    source: str = "label map",
) -> Tensor:
    """Integer label ids -> `seg`, the float one-hot (+ edge) map the networks take.

    Args:
        labels: (b, 1, H, W) or (b, H, W) integer ids in `0..label_nc-1`, plus `label_nc` for
            don't-care when `contain_dontcare_label` (datasets map 255 to `label_nc` first).
        instance: (b, 1, H, W) instance ids; its edge map becomes the last channel.
        instance_edges: require (True) or forbid (False) the edge channel; default: present iff
            `instance` is given.
        source: what to name in error messages (a file path when known).
    Returns:
        (b, semantic_nc, H, W) float tensor.
    """
    if labels.dim() == 3:
        labels = labels.unsqueeze(1)
    if labels.dim() != 4 or labels.shape[1] != 1:
        raise ValueError(
            f"{source}: expected integer label ids of shape (b, 1, H, W), got {tuple(labels.shape)}; "
            "an RGB colour mask must be converted to one id per pixel first"
        )
    if labels.is_floating_point():
        if not torch.equal(labels, labels.round()):
            raise ValueError(f"{source}: label ids must be integers, got fractional values")
    labels = labels.long()
    nc = label_nc + int(contain_dontcare_label)
    lo, hi = int(labels.min()), int(labels.max())
    if lo < 0 or hi >= nc:
        fix = (
            "set contain_dontcare_label = True (255 becomes the don't-care channel)"
            if hi == label_nc and not contain_dontcare_label
            else f"raise label_nc above {hi} or remap the ids"
        )
        raise ValueError(
            f"{source}: label ids span {lo}..{hi} but label_nc={label_nc} "
            f"(contain_dontcare_label={contain_dontcare_label}) allows 0..{nc - 1}; {fix}"
        )
    seg = F.one_hot(labels[:, 0], nc).permute(0, 3, 1, 2).float()
    want_edges = instance is not None if instance_edges is None else instance_edges
    if want_edges:
        if instance is None:
            raise ValueError(
                f"{source}: instance_edges=True but no instance map was given; "
                "provide instance maps or set instance_edges = False"
            )
        if instance.dim() == 3:
            instance = instance.unsqueeze(1)
        if instance.shape[-2:] != labels.shape[-2:]:
            raise ValueError(
                f"{source}: instance map size {tuple(instance.shape[-2:])} differs from label map "
                f"size {tuple(labels.shape[-2:])}"
            )
        seg = torch.cat([seg, get_edges(instance).to(seg)], dim=1)
    return seg
