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
- `conv_labels(conv, x, size)`: what the blocks call instead of `conv(F.interpolate(x, size))`: the label
  channels by `label_conv2d`, the other channels (instance edges, features) by dense convs with their slices
  of the weight; plain `conv(...)` when the switch is off or `x` is not a label map.

Where the ids come from (the map's `LabelLayout`, attached where the labels were one-hot encoded) and the
switch (`label_sparse.mode`): `condgen.ops.layout`, whose names this module re-exports. Recomputing a
gathered activation in backward instead of keeping it: `condgen.ops.label_recompute`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from condgen.data.labels import id_dtype
from condgen.ops.layout import (  # noqa: F401  (re-exported: the names this module always had)
    AUTO_MIN_LABELS,
    MODES,
    _detect,
    _warned,
    cat_batch_labels,
    cat_labels,
    label_ids,
    label_layout,
    label_sparse_mode,
    use_label_sparse,
)

_id_dtype = id_dtype


# ------------------------------------------------------------------------------------------------ the op
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
