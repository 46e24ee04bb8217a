"""The label layout of a condition map, for the label-sparse ops: the switch, and where layouts come from.

A `LabelLayout` (`condgen.data.labels`) says "channels [offset, offset + num_labels) of this tensor are the
one-hot map of `ids`; the others are these dense parts" (offset 0 but for OASIS's 3-D noise, which comes
before the labels). `encode_labels` attaches it where the ids are one-hot encoded; `label_layout(x)` reads
it, and only for a map that carries none (a tensor built by hand, soft labels) falls back to searching for
it (an exactly one-hot prefix of all channels, or of all but the last one, the instance edges).
`cat_labels(seg, *features, before=z)` makes the layout of `cat(z, seg, features)`; `cat_batch_labels([seg,
seg])` concatenates along the batch keeping it (a discriminator's [fake; real]); `label_ids(x, size)` gives
the ids at a size, for layers that look a value up per label. `layout.at(size)` is the nearest-resized layout
(ids resized, identical to resizing the one-hot map), cached per size, so every layer at one resolution
shares one id map.

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
from collections.abc import Iterator

import gin
import torch
import torch.nn.functional as F
from torch import Tensor

from condgen.data.labels import LabelLayout, attach_layout, attached_layout, id_dtype

log = logging.getLogger("condgen.ops")

MODES = ("auto", "on", "off")
_override: list[str] = []  # use_label_sparse() stack
_warned: list[str] = []  # the one fallback message, once per process


@gin.configurable("label_sparse", module="condgen.ops.label_conv")  # the selector it always had
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


def _one_hot_ids(x: Tensor, k: int) -> Tensor | None:
    """ids if channels [0, k) of x are exactly one-hot (every pixel one 1, the rest 0), else None."""
    head = x[:, :k]
    values, ids = head.max(1)
    if not bool((values == 1).all()) or not bool((torch.count_nonzero(head, dim=1) == 1).all()):
        return None
    return ids.to(id_dtype(k))


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
    """The layout of x: attached by `encode_labels` / `cat_labels` / an earlier call, else detected (`detect`:
    only maps that were not encoded by condgen, e.g. built by hand), else None.

    None also when the switch is off. A detection that fails falls back (one message per process).
    """
    mode = label_sparse_mode()
    if mode == "off":
        return None
    known = attached_layout(x)
    if known is not None:
        return _worth(known or None, mode)
    if not detect:
        return None
    if mode == "auto" and x.dim() == 4 and x.shape[1] < AUTO_MIN_LABELS:
        return None  # too few channels to pay off, whatever they hold: nothing to detect or report
    layout, why = _detect(x)
    attach_layout(x, layout)
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
        known = attached_layout(x)
        if known is None and not x.requires_grad:
            known, _ = _detect(x)
            attach_layout(x, known)
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
    if base is None and label_sparse_mode() != "off" and isinstance(attached_layout(seg), LabelLayout):
        # too few labels for sparse convs (they re-check), but lookups use the ids
        base = attached_layout(seg)
    if base is not None:
        base, shift = base.at(size), sum(t.shape[1] for t in front)
        parts = [(0, before)] if before is not None else []
        parts += [(c + shift, p) for c, p in base.parts]
        c = base.channels + shift
        for f in features:
            parts.append((c, f))
            c += f.shape[1]
        attach_layout(out, LabelLayout(base.ids, base.num_labels, c, tuple(parts), base.offset + shift))
    else:
        attach_layout(out, None)
    return out


@torch.compiler.disable
def cat_batch_labels(maps: list[Tensor]) -> Tensor:
    """`torch.cat(maps)` (along the batch) keeping the label layout the maps carry (ids and parts concatenated
    too), so that a discriminator reading [seg; seg] does not search the one-hot channels again."""
    out = torch.cat(maps)
    if label_sparse_mode() == "off":
        return out
    layouts = [attached_layout(m) for m in maps]
    if not all(isinstance(lay, LabelLayout) for lay in layouts):
        return out  # unknown (detected where needed) or known not to be a label map
    first = layouts[0]
    same = all((lay.num_labels, lay.channels, lay.offset, [c for c, _ in lay.parts])
               == (first.num_labels, first.channels, first.offset, [c for c, _ in first.parts])
               and lay.ids.dtype == first.ids.dtype for lay in layouts)
    if same:
        parts = tuple((c, torch.cat([lay.parts[j][1] for lay in layouts]))
                      for j, (c, _) in enumerate(first.parts))
        ids = torch.cat([lay.ids for lay in layouts])
        attach_layout(out, LabelLayout(ids, first.num_labels, first.channels, parts, first.offset))
    return out
