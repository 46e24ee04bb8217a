"""Label-sparse convolutions: exact convolutions of one-hot label maps by gathering weights by label id.

A k x k convolution of a one-hot map with S channels is, at each output pixel, the sum of the k*k weight
columns picked by the label ids of its neighbours: `out[o, p] = b[o] + sum_t W[o, id(p + off_t), t]`.
Computed that way it costs k*k*O adds per pixel instead of S*k*k*O multiply-adds, and backward needs the
ids only (one byte per pixel) instead of the S-channel float map. Same numbers as the dense convolution up
to fp32 round-off (the sums run in another order).

- `label_conv2d(ids, weight, bias, stride, padding)`: the op. Forward: one `embedding_bag` (sum) over the
  k*k shifted id maps, the table being the weight with one zero row per tap for the zero padding. Backward:
  the weight gradient by scatter-add (`index_add_`) of the output gradient rows, one per tap; the bias
  gradient by a sum; no gradient to the ids.
- `LabelLayout`: "channels [offset, offset + num_labels) of this tensor are the one-hot map of `ids`; the
  others are these dense parts" (offset 0 but for OASIS's 3-D noise, which comes before the labels). It
  rides on the tensor it describes (an attribute, so it lives exactly as long), is found by
  `label_layout(x)` (or detected there: an exactly one-hot prefix of all channels, or of all but the last
  one, the instance edges) and made by `cat_labels(seg, *features, before=z)` for `cat(z, seg, features)`.
  `cat_batch_labels([seg, seg])` concatenates along the batch keeping it (a discriminator's [fake; real]).
  `layout.at(size)` is the nearest-resized layout (ids resized, identical to resizing the one-hot map),
  cached per size, so every layer at one resolution shares one id map.
- `conv_labels(conv, x, size)`: what the blocks call instead of `conv(F.interpolate(x, size))`: the label
  channels by `label_conv2d`, the other channels (instance edges, features) by dense convs with their slices
  of the weight; plain `conv(...)` when the switch is off or `x` is not a label map.

The switch (gin): `label_sparse.mode = 'auto'` (default: label-sparse where the map is exactly one-hot
with at least `AUTO_MIN_LABELS` label channels; a map that is not exactly one-hot stays dense, saying so
once), `'on'` (label-sparse wherever the map is exactly one-hot, whatever its label count; the same
fallback) or `'off'` (dense, the official computation). `use_label_sparse(mode)` sets it for a `with`
block; the environment variable `CONDGEN_LABEL_SPARSE` for a process (CI runs the parity tests with
'on' and 'off').
"""

from __future__ import annotations

import contextlib
import logging
import os
import weakref
from collections.abc import Iterator
from dataclasses import dataclass, field

import gin
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.multiprocessing.reductions import StorageWeakRef

log = logging.getLogger("condgen.ops")

MODES = ("auto", "on", "off")
_ATTR = "_condgen_label_layout"  # attribute of a tensor holding its LabelLayout (or False: not a label map)
_override: list[str] = []  # use_label_sparse() stack
_warned: list[str] = []  # the one fallback message, once per process


@gin.configurable("label_sparse")
def label_sparse_mode(mode: str = "auto") -> str:
    """The label-sparse switch: 'auto' | 'on' | 'off' (gin `label_sparse.mode`; `use_label_sparse` and the
    environment variable CONDGEN_LABEL_SPARSE, in that order, win over gin)."""
    mode = _override[-1] if _override else os.environ.get("CONDGEN_LABEL_SPARSE", mode)
    if mode is True or mode is False:
        mode = "on" if mode else "off"
    if mode not in MODES:
        raise ValueError(f"label_sparse.mode must be one of {', '.join(MODES)}, got {mode!r}")
    return mode


@contextlib.contextmanager
def use_label_sparse(mode: str) -> Iterator[None]:
    """Set the label-sparse switch inside a `with` block (tests, benchmarks); wins over gin."""
    if mode not in MODES:
        raise ValueError(f"use_label_sparse: mode must be one of {', '.join(MODES)}, got {mode!r}")
    _override.append(mode)
    try:
        yield
    finally:
        _override.pop()


# ------------------------------------------------------------------------------------------------ the op
def _id_dtype(num_labels: int) -> torch.dtype:
    """Smallest integer dtype holding 0..num_labels (num_labels is the padding id)."""
    if num_labels < 256:
        return torch.uint8
    return torch.int16 if num_labels < 2**15 else torch.int32


def _tap_indices(ids: Tensor, num_labels: int, k: tuple[int, int], stride: tuple[int, int],
                 padding: tuple[int, int]) -> tuple[Tensor, tuple[int, int]]:
    """(P, kh*kw) int64 rows of the gather table, tap t reading row t*(S+1) + id; and the output size."""
    kh, kw = k
    (sh, sw), (ph, pw) = stride, padding
    padded = F.pad(ids, (pw, pw, ph, ph), value=num_labels)  # padding reads the zero row
    ho, wo = (padded.shape[-2] - kh) // sh + 1, (padded.shape[-1] - kw) // sw + 1
    if ho < 1 or wo < 1:
        raise ValueError(f"label_conv2d: input {tuple(ids.shape[-2:])} is smaller than the kernel {k}")
    idx = torch.empty(*ids.shape[:1], ho, wo, kh * kw, dtype=torch.int64, device=ids.device)
    for ky in range(kh):
        for kx in range(kw):
            t = ky * kw + kx
            tap = padded[:, ky : ky + sh * (ho - 1) + 1 : sh, kx : kx + sw * (wo - 1) + 1 : sw]
            idx[..., t].copy_(tap).add_(t * (num_labels + 1))  # in int64: uint8 ids would wrap
    return idx.view(-1, kh * kw), (ho, wo)


class _LabelConv(torch.autograd.Function):
    """Forward by gather (embedding_bag), weight gradient by scatter-add; saves only the id map."""

    @staticmethod
    def forward(ctx, ids: Tensor, weight: Tensor, bias: Tensor | None, stride, padding) -> Tensor:
        o, s, kh, kw = weight.shape
        idx, (ho, wo) = _tap_indices(ids, s, (kh, kw), stride, padding)
        with torch.autocast(ids.device.type, enabled=False):  # sums in the weight's dtype (fp32)
            table = weight.new_zeros(kh, kw, s + 1, o)
            table[:, :, :s] = weight.permute(2, 3, 1, 0)
            rows = F.embedding_bag(idx, table.view(-1, o), mode="sum")  # (P, O)
            if bias is not None:
                rows.add_(bias.to(rows.dtype))
        ctx.save_for_backward(ids)
        ctx.meta = (weight.shape, stride, padding, bias is not None)
        return rows.view(ids.shape[0], ho, wo, o).permute(0, 3, 1, 2)  # channels-last memory

    @staticmethod
    def backward(ctx, grad: Tensor):
        (ids,) = ctx.saved_tensors
        (o, s, kh, kw), stride, padding, has_bias = ctx.meta
        need_w, need_b = ctx.needs_input_grad[1], has_bias and ctx.needs_input_grad[2]
        dtype = grad.dtype if grad.dtype in (torch.float32, torch.float64) else torch.float32
        rows = grad.permute(0, 2, 3, 1).reshape(-1, o).to(dtype)  # (P, O), a copy unless channels-last
        grad_w = grad_b = None
        if need_w:
            idx, _ = _tap_indices(ids, s, (kh, kw), stride, padding)
            table = rows.new_zeros(kh * kw * (s + 1), o)
            for t in range(kh * kw):  # differentiable (out of place on a fresh tensor): double backward works
                table = table.index_add(0, idx[:, t], rows) if torch.is_grad_enabled() else \
                    table.index_add_(0, idx[:, t], rows)
            grad_w = table.view(kh, kw, s + 1, o)[:, :, :s].permute(3, 2, 0, 1).contiguous()
        if need_b:
            grad_b = rows.sum(0)
        return None, grad_w, grad_b, None, None


def _pair(v: int | tuple[int, ...]) -> tuple[int, int]:
    return (v, v) if isinstance(v, int) else (int(v[0]), int(v[1]))


def label_conv2d(ids: Tensor, weight: Tensor, bias: Tensor | None = None, stride: int | tuple[int, int] = 1,
                 padding: int | tuple[int, int] = 0) -> Tensor:
    """`F.conv2d(one_hot(ids, S), weight, bias, stride, padding)`, computed by gathering weights by id.

    Args:
        ids: (N, H, W) integer label ids in 0..S-1 (any integer dtype; uint8 / int16 keep backward small).
        weight: (O, S, kh, kw); bias: (O,) or None. Zero padding, no dilation, one group.
    Returns:
        (N, O, Ho, Wo) in the weight's dtype, channels-last in memory. Gradients flow to weight and bias,
        none to the ids.
    """
    if ids.dim() != 3 or ids.is_floating_point():
        raise ValueError(f"label_conv2d: ids must be (N, H, W) integers, got {ids.dtype} {tuple(ids.shape)}")
    if weight.dim() != 4:
        raise ValueError(f"label_conv2d: weight must be (O, S, kh, kw), got {tuple(weight.shape)}")
    if ids.dtype not in (torch.uint8, torch.int16, torch.int32, torch.int64):
        ids = ids.long()
    return _LabelConv.apply(ids, weight, bias, _pair(stride), _pair(padding))


# -------------------------------------------------------------------------------------- the label layout
@dataclass(eq=False)
class LabelLayout:
    """Channels [offset, offset + num_labels) of a (N, channels, H, W) tensor are `one_hot(ids)`; each
    other channel range [c, c + part.shape[1]) is `part` (noise, edges, features), in `parts` as (c, part)."""

    ids: Tensor  # (N, H, W), `_id_dtype(num_labels)`
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


def _attach(x: Tensor, layout: LabelLayout | None) -> None:
    setattr(x, _ATTR, (x._version, layout if layout is not None else False))
    for k in [k for k, (ref, _, lay) in _BY_STORAGE.items() if ref.expired() or lay() is None]:
        del _BY_STORAGE[k]
    if layout is not None:
        _BY_STORAGE[_key(x)] = (StorageWeakRef(x.untyped_storage()), x._version, weakref.ref(layout))


def _attached(x: Tensor) -> LabelLayout | bool | None:
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


def _one_hot_ids(x: Tensor, k: int) -> Tensor | None:
    """ids if channels [0, k) of x are exactly one-hot (every pixel one 1, the rest 0), else None."""
    head = x[:, :k]
    values, ids = head.max(1)
    if not bool((values == 1).all()) or not bool((torch.count_nonzero(head, dim=1) == 1).all()):
        return None
    return ids.to(_id_dtype(k))


def _detect(x: Tensor) -> tuple[LabelLayout | None, str]:
    """Layout of a map whose channels are all one-hot, or all but the last (instance edges); else
    (None, why)."""
    if x.dim() != 4 or not x.is_floating_point() or x.shape[1] < 2:
        return None, f"is not a (N, C, H, W) float map with C >= 2 (got {x.dtype} {tuple(x.shape)})"
    if x.requires_grad:  # the gather gives no gradient to the labels
        return None, "requires a gradient itself"
    c = x.shape[1]
    for k in (c, c - 1):
        ids = _one_hot_ids(x, k)
        if ids is not None:
            return LabelLayout(ids, k, c, ((k, x[:, k:]),) if k < c else ()), ""
    return None, ("is not an exactly one-hot label map (each pixel one 1 in its label channels, optionally "
                  "followed by one instance-edge channel; soft labels?)")


def _fallback(what: str, why: str) -> None:
    if not _warned:
        _warned.append(what)
        log.warning("label-sparse convolutions: %s %s; using dense convolutions for it (this message is "
                    "shown once)", what, why)


@torch.compiler.disable
def label_layout(x: Tensor, *, detect: bool = True, what: str = "a condition map") -> LabelLayout | None:
    """The layout of x: attached by `cat_labels` / an earlier call, else detected (`detect`), else None.

    None also when the switch is off. A detection that fails falls back (one message per process).
    """
    mode = label_sparse_mode()
    if mode == "off":
        return None
    known = _attached(x)
    if known is not None:
        return _worth(known or None, mode)
    if not detect:
        return None
    if mode == "auto" and x.dim() == 4 and x.shape[1] < AUTO_MIN_LABELS:
        return None  # too few channels to pay off, whatever they hold: nothing to detect or report
    layout, why = _detect(x)
    _attach(x, layout)
    if layout is None:
        _fallback(what, why)
    return _worth(layout, mode)


@torch.compiler.disable
def label_ids(x: Tensor, size: tuple[int, int] | None = None, *, num_labels: int | None = None) -> Tensor:
    """(N, h, w) int64 label ids of the one-hot map in x's first `num_labels` channels, nearest-resized to
    `size` (as `F.interpolate(x, size, mode='nearest')[:, :num_labels].argmax(1)`).

    Layers that only look a value up per label (CLADE's class tables, a positional map) call this instead
    of resizing the one-hot map: with a known or detectable layout (any label count, in 'auto' too: a
    lookup needs no dense pass to pay off) the ids are resized, one id map per size, shared by every layer;
    else ('off', soft labels) the dense resize and argmax, the official computation.
    """
    size = tuple(x.shape[-2:]) if size is None else tuple(int(s) for s in size)
    k = x.shape[1] if num_labels is None else num_labels
    layout = None
    if label_sparse_mode() != "off":
        known = _attached(x)
        if known is None and not x.requires_grad:
            known, _ = _detect(x)
            _attach(x, known)
        layout = known or None
    # a layout counting one channel more has an all-zero instance-edge channel among its labels: same ids
    if layout is not None and layout.offset == 0 and (num_labels is None or layout.num_labels in (k, k + 1)):
        return layout.at(size).ids.long()
    head = x[:, :k]
    if tuple(head.shape[-2:]) != size:
        head = F.interpolate(head, size=size, mode="nearest")
    return head.argmax(1)


# 'auto' leaves maps with fewer label channels than this to the dense conv. Measured (benchmarks.label_sparse
# op, 64 px, batch 4, 1 CPU thread, one generator pass of shared convs): 9 labels 0.5x, 16 0.8x, 32 1.2x
# (benchmarks/RESULTS.md); Cityscapes (35), ADE20K (151) and COCO-Stuff (184) are above it.
AUTO_MIN_LABELS = 32


def _worth(layout: LabelLayout | None, mode: str) -> LabelLayout | None:
    if layout is None or (mode == "auto" and layout.num_labels < AUTO_MIN_LABELS):
        return None
    return layout


@torch.compiler.disable
def cat_labels(
    seg: Tensor, *features: Tensor, size: tuple[int, int] | None = None, before: Tensor | None = None
) -> Tensor:
    """`torch.cat([before, F.interpolate(seg, size, mode='nearest'), *features], 1)` with its layout.

    seg: the one-hot (+ edges) map; features (and `before`, e.g. OASIS's noise map): maps of `size`
    (default: seg's size). The layout (seg's, resized, with the others as dense parts) lets `conv_labels`
    skip the one-hot channels.
    """
    size = tuple(seg.shape[-2:]) if size is None else tuple(int(s) for s in size)
    resized = seg if tuple(seg.shape[-2:]) == size else F.interpolate(seg, size=size, mode="nearest")
    front = [] if before is None else [before]
    out = torch.cat([*front, resized, *features], 1)
    base = label_layout(seg, what="the label map")
    if base is None and label_sparse_mode() != "off" and isinstance(_attached(seg), LabelLayout):
        base = _attached(seg)  # too few labels for sparse convs (they re-check), but lookups use the ids
    if base is not None:
        base, shift = base.at(size), sum(t.shape[1] for t in front)
        parts = [(0, before)] if before is not None else []
        parts += [(c + shift, p) for c, p in base.parts]
        c = base.channels + shift
        for f in features:
            parts.append((c, f))
            c += f.shape[1]
        _attach(out, LabelLayout(base.ids, base.num_labels, c, tuple(parts), base.offset + shift))
    else:
        _attach(out, None)
    return out


@torch.compiler.disable
def cat_batch_labels(maps: list[Tensor]) -> Tensor:
    """`torch.cat(maps)` (along the batch) keeping the label layout the maps carry (ids and parts concatenated
    too), so that a discriminator reading [seg; seg] does not search the one-hot channels again."""
    out = torch.cat(maps)
    if label_sparse_mode() == "off":
        return out
    layouts = [_attached(m) for m in maps]
    if not all(isinstance(lay, LabelLayout) for lay in layouts):
        return out  # unknown (detected where needed) or known not to be a label map
    first = layouts[0]
    same = all((lay.num_labels, lay.channels, lay.offset, [c for c, _ in lay.parts])
               == (first.num_labels, first.channels, first.offset, [c for c, _ in first.parts])
               and lay.ids.dtype == first.ids.dtype for lay in layouts)
    if same:
        parts = tuple((c, torch.cat([lay.parts[j][1] for lay in layouts]))
                      for j, (c, _) in enumerate(first.parts))
        _attach(out, LabelLayout(torch.cat([lay.ids for lay in layouts]), first.num_labels, first.channels,
                                 parts, first.offset))
    return out


def _supported(conv: nn.Module) -> bool:
    return (isinstance(conv, nn.Conv2d) and conv.groups == 1 and _pair(conv.dilation) == (1, 1)
            and conv.padding_mode == "zeros" and not isinstance(conv.padding, str))


@torch.compiler.disable
def conv_labels(conv: nn.Conv2d, x: Tensor, size: tuple[int, int] | None = None, *,
                detect: bool = True, what: str = "a condition map") -> Tensor:
    """`conv(F.interpolate(x, size, mode='nearest'))` (no resize when size is None or x's own size), with
    the one-hot channels of x computed label-sparse when its layout is known (or `detect`-ed).

    Same numbers as the dense call up to fp32 round-off; under autocast the label part is summed in fp32
    and returned in the autocast dtype, like the dense part. `detect=False`: use only an attached layout
    (for inputs that are not label maps by design, e.g. a discriminator's pooled scales); `what` names x
    in the fallback message.
    """
    size = tuple(x.shape[-2:]) if size is None else tuple(int(s) for s in size)
    layout = label_layout(x, detect=detect, what=what) if _supported(conv) else None
    if layout is None or layout.channels != conv.in_channels:
        if tuple(x.shape[-2:]) != size:
            x = F.interpolate(x, size=size, mode="nearest")
        return conv(x)
    layout = layout.at(size)
    weight, k, o = conv.weight, layout.num_labels, layout.offset  # read once: a spectral norm steps once
    out = label_conv2d(layout.ids, weight[:, o : o + k], conv.bias, conv.stride, conv.padding)
    device = x.device.type
    if torch.is_autocast_enabled(device):
        out = out.to(torch.get_autocast_dtype(device))
    for c, part in layout.parts:  # `out = out + dense`, written into the dense conv's fresh output: the same
        # sum (addition commutes), one pass instead of an add into new memory and a layout copy
        out = F.conv2d(part, weight[:, c : c + part.shape[1]], None, conv.stride, conv.padding).add_(out)
    if not x.is_contiguous() and x.is_contiguous(memory_format=torch.channels_last):
        return out.contiguous(memory_format=torch.channels_last)
    return out.contiguous()  # the caller's memory format (the gather writes channels-last)


# --------------------------------------------------------------- recompute the gather instead of keeping it
@gin.configurable("label_sparse_recompute")
def recompute_enabled(enabled: bool = True) -> bool:
    """Whether label-sparse layers recompute their (cheap) gathered activation in backward instead of keeping
    it (gin `label_sparse_recompute.enabled`); same numbers, less saved memory."""
    return enabled


class _Recomputed:
    """A saved tensor that backward gets back by recomputing it (once for all of its uses)."""

    def __init__(self, fn, guards: tuple[Tensor, ...]) -> None:
        self.fn, self.guards = fn, guards
        self.versions = [g._version for g in guards]
        self.uses, self.value = 0, None

    def get(self) -> Tensor:
        if [g._version for g in self.guards] != self.versions:
            raise RuntimeError("label-sparse recompute: a weight changed in place between forward and "
                               "backward")
        value = self.value
        if value is None:
            value = self.fn()
        self.uses -= 1
        self.value = value if self.uses > 0 else None  # kept only until its last use
        return value


def _storage_key(t: Tensor) -> tuple:
    return (t.untyped_storage().data_ptr(), t.storage_offset(), tuple(t.shape), t.stride(), t.dtype)


@torch.compiler.disable
def shared_then(conv: nn.Conv2d, act: nn.Module, heads: tuple[nn.Module, ...], x: Tensor,
                size: tuple[int, int]) -> tuple[Tensor, ...]:
    """`h = act(conv_labels(conv, x, size))`, then `head(h)` for each head (SPADE's shared conv, ReLU and the
    gamma / beta convs). When the label-sparse path runs and `act` is a ReLU, `h` is not kept for backward:
    backward recomputes it once (a gather, far cheaper than the convs) from the id maps, kept anyway."""
    device = x.device.type
    autocast = (torch.is_autocast_enabled(device), torch.get_autocast_dtype(device))
    layout = label_layout(x)
    use = (layout is not None and recompute_enabled() and torch.is_grad_enabled() and isinstance(act, nn.ReLU)
           and not act.inplace and layout.channels == getattr(conv, "in_channels", None) and _supported(conv))
    pre = conv_labels(conv, x, size)  # the gather saves only the id maps
    if not use:
        h = act(pre)
        return tuple(head(h) for head in heads)

    def again() -> Tensor:
        with torch.no_grad(), torch.autocast(device, dtype=autocast[1], enabled=autocast[0]):
            return act(conv_labels(conv, x, size))

    token = _Recomputed(again, tuple(conv.parameters()))
    key: list[tuple] = []  # empty while the ReLU runs: what it saves is its result, h

    def pack(t: Tensor):
        if not key or _storage_key(t) == key[0]:
            token.uses += 1
            return token
        return t

    def unpack(p):
        return p.get() if isinstance(p, _Recomputed) else p

    with torch.autograd.graph.saved_tensors_hooks(pack, unpack):
        h = act(pre)
        key.append(_storage_key(h))
        return tuple(head(h) for head in heads)
