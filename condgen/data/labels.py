"""Label-map encoding: integer ids -> the generator's one-hot input, in the official channel order.

Channel order (matters for official checkpoints): `[class 0 .. label_nc-1, dontcare?, instance-edge?]`.
`semantic_nc` is computed here and nowhere else.

`encode_labels` attaches the map's `LabelLayout` (the ids it one-hot encoded, the edge channel as a dense
part) to the tensor it returns, so that the label-sparse convolutions and the layers that look values up per
label (`condgen.ops.layout`) read the ids instead of searching the one-hot channels for them. The layout
rides on the tensor (an attribute, so it lives exactly as long; also found by storage, for the new tensor
objects autograd hands back) and is dropped when the tensor is changed in place.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.multiprocessing.reductions import StorageWeakRef

_ATTR = "_condgen_label_layout"  # attribute of a tensor holding its LabelLayout (or False: not a label map)


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
        (b, semantic_nc, H, W) float tensor, carrying its `LabelLayout` (`attached_layout(seg)`).
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
    parts = ((nc, seg[:, nc:]),) if seg.shape[1] > nc else ()
    attach_layout(seg, LabelLayout(labels[:, 0].to(id_dtype(nc)), nc, seg.shape[1], parts))
    return seg


# -------------------------------------------------------------------------------------- the label layout
def id_dtype(num_labels: int) -> torch.dtype:
    """Smallest integer dtype holding 0..num_labels (num_labels is the padding id)."""
    if num_labels < 256:
        return torch.uint8
    return torch.int16 if num_labels < 2**15 else torch.int32


@dataclass(eq=False)
class LabelLayout:
    """Channels [offset, offset + num_labels) of a (N, channels, H, W) tensor are `one_hot(ids)`; each
    other channel range [c, c + part.shape[1]) is `part` (noise, edges, features), in `parts` as (c, part)."""

    ids: Tensor  # (N, H, W), `id_dtype(num_labels)`
    num_labels: int
    channels: int
    parts: tuple[tuple[int, Tensor], ...] = ()
    offset: int = 0
    _sizes: dict[tuple[int, int], LabelLayout] = field(default_factory=dict, repr=False)

    @property
    def size(self) -> tuple[int, int]:
        return tuple(self.ids.shape[-2:])

    def at(self, size: tuple[int, int]) -> LabelLayout:
        """This layout nearest-resized to `size` (as `F.interpolate(x, size, mode='nearest')`), cached."""
        size = tuple(int(s) for s in size)
        if size == self.size:
            return self
        if size not in self._sizes:
            ids = F.interpolate(self.ids[:, None].float(), size=size, mode="nearest")[:, 0].to(self.ids.dtype)
            parts = tuple((c, F.interpolate(p, size=size, mode="nearest")) for c, p in self.parts)
            self._sizes[size] = LabelLayout(ids, self.num_labels, self.channels, parts, self.offset)
        return self._sizes[size]


# Layouts also by storage, weakly: autograd hands saved tensors back as new tensor objects sharing the storage
# (activation checkpointing re-runs the heads on those), which carry no attribute.
_BY_STORAGE: dict[tuple, tuple[StorageWeakRef, int, weakref.ref]] = {}


def _key(x: Tensor) -> tuple:
    return (x.device, x.untyped_storage().data_ptr(), x.storage_offset(), tuple(x.shape), x.stride(), x.dtype)


def attach_layout(x: Tensor, layout: LabelLayout | None) -> None:
    """Record on x that it is the map `layout` describes (None: known not to be a label map)."""
    setattr(x, _ATTR, (x._version, layout if layout is not None else False))
    for k in [k for k, (ref, _, lay) in _BY_STORAGE.items() if ref.expired() or lay() is None]:
        del _BY_STORAGE[k]
    if layout is not None:
        _BY_STORAGE[_key(x)] = (StorageWeakRef(x.untyped_storage()), x._version, weakref.ref(layout))


def attached_layout(x: Tensor) -> LabelLayout | bool | None:
    """The layout attached to x (False: known not to be a label map), None when unknown or x changed."""
    entry = getattr(x, _ATTR, None)
    if entry is None:
        known = _BY_STORAGE.get(_key(x))
        if known is None or known[0].expired() or known[1] != x._version:
            return None
        return known[2]() or None
    if entry[0] != x._version:
        return None
    return entry[1]
