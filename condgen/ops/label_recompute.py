"""Recompute a label-sparse layer's gathered activation in backward instead of keeping it.

`shared_then(conv, act, heads, x, size)` is SPADE's shared conv, ReLU and gamma / beta heads; on the
label-sparse path the ReLU's output is not saved for backward but recomputed once (a gather, far cheaper
than the convs) from the id maps, which are kept anyway. Same numbers, less saved memory; gin
`label_sparse_recompute.enabled` switches it.
"""

from __future__ import annotations

import gin
import torch
from torch import Tensor, nn

from condgen.ops.label_conv import _supported, conv_labels
from condgen.ops.layout import label_layout


@gin.configurable("label_sparse_recompute", module="condgen.ops.label_conv")  # the selector it always had
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
