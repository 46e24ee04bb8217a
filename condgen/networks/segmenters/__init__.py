"""The paper mIoU segmenters as condgen networks, written from the published architecture facts.

- `deeplabv2.DeepLabV2MSC`: DeepLabV2-ResNet101 with multi-scale max fusion (COCO-Stuff, 182 classes);
- `upernet.UperNet`: CSAIL's ResNet-101 encoder + UPerNet decoder (ADE20K, 150 classes);
- `drn.DRNSeg`: DRN-D-105 with its 1x1 classifier and frozen bilinear up-sampler (Cityscapes, 19 classes).

Each network's state-dict keys are exactly those of the released weight files, so no rename is needed; the
rename table beside each network lists only the wrappers a saved file may add (``module.`` from
DataParallel). `load_strict` loads a released state dict and names every missing, unexpected or mis-shaped
key. No code of the original repositories is used.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from torch import Tensor, nn


class StateDictMismatchError(ValueError):
    """A state dict does not fit a network: the message lists every missing, unexpected and mis-shaped key."""


def _preview(keys: list[str], n: int = 12) -> str:
    shown = ", ".join(keys[:n])
    return shown + (f", ... ({len(keys) - n} more)" if len(keys) > n else "")


def load_strict(
    net: nn.Module,
    state: Mapping[str, Tensor],
    *,
    rename: Mapping[str, str] | None = None,
    drop_suffixes: Iterable[str] = (),
    optional_suffixes: Iterable[str] = ("num_batches_tracked",),
    what: str = "weights",
) -> nn.Module:
    """Load `state` into `net` strictly, after the rename table and the documented drops.

    Args:
        rename: prefix -> replacement applied to every key (e.g. ``{"module.": ""}``).
        drop_suffixes: keys ending in these names are dropped when present (buffers that never affect eval).
        optional_suffixes: keys the network has but a file may lack; the network keeps its own value.
    Raises:
        StateDictMismatchError naming every missing, unexpected and mis-shaped key.
    """
    drop, optional = tuple(drop_suffixes), tuple(optional_suffixes)
    fixed: dict[str, Tensor] = {}
    for key, value in state.items():
        for old, new in (rename or {}).items():
            if key.startswith(old):
                key = new + key[len(old) :]
                break
        if drop and key.endswith(drop):
            continue
        fixed[key] = value
    own = net.state_dict()
    missing = [k for k in own if k not in fixed and not (optional and k.endswith(optional))]
    unexpected = [k for k in fixed if k not in own]
    shapes = [
        f"{k} {tuple(fixed[k].shape)} (network: {tuple(own[k].shape)})"
        for k in own
        if k in fixed and tuple(fixed[k].shape) != tuple(own[k].shape)
    ]
    if missing or unexpected or shapes:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing: {_preview(missing)}")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected: {_preview(unexpected)}")
        if shapes:
            parts.append(f"{len(shapes)} mis-shaped: {_preview(shapes)}")
        raise StateDictMismatchError(
            f"{what} do not fit {type(net).__name__} ({len(own)} keys): " + "; ".join(parts)
        )
    for k in own:
        if k not in fixed:  # an optional key (num_batches_tracked): keep the network's own value
            fixed[k] = own[k]
    net.load_state_dict(fixed, strict=True)
    return net


def unwrap_checkpoint(obj: object) -> Mapping[str, Tensor]:
    """A state dict from what `torch.load` returned: the dict itself, or its 'state_dict'/'model' entry."""
    if isinstance(obj, Mapping):
        for key in ("state_dict", "model"):
            if key in obj and isinstance(obj[key], Mapping):
                return obj[key]
        return obj
    raise TypeError(f"expected a state dict, got {type(obj).__name__}")


def count_parameters(net: nn.Module) -> int:
    """All parameters, frozen ones included (DRN's bilinear `up.weight` counts)."""
    return sum(p.numel() for p in net.parameters())


__all__ = ["StateDictMismatchError", "count_parameters", "load_strict", "unwrap_checkpoint"]
