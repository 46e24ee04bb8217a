"""Key renaming between official (hook-API spectral norm) state dicts and condgen's, checked strictly.

The only systematic difference is spectral norm: the official `weight_orig / weight_u / weight_v`
are the parametrization API's `parametrizations.weight.original / .0._u / .0._v`. Everything
network-specific (prefix renames, dropped keys) is a small table passed in by the caller.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import torch
from torch import Tensor, nn

_SN_SUFFIXES = {
    "weight_orig": "parametrizations.weight.original",
    "weight_u": "parametrizations.weight.0._u",
    "weight_v": "parametrizations.weight.0._v",
}


def rename_official(
    state_dict: Mapping[str, Tensor], renames: Mapping[str, str | None] | None = None
) -> dict[str, Tensor]:
    """Official state dict -> condgen keys.

    Args:
        renames: prefix table applied first, longest prefix wins: `{'labelenc1.': 'condition.enc.0.'}`;
            a value of None drops the keys under that prefix.
    """
    renames = dict(renames or {})
    prefixes = sorted(renames, key=len, reverse=True)
    out: dict[str, Tensor] = {}
    for key, value in state_dict.items():
        for p in prefixes:
            if key.startswith(p):
                if renames[p] is None:
                    key = None
                else:
                    key = renames[p] + key[len(p) :]
                break
        if key is None:
            continue
        head, _, last = key.rpartition(".")
        if last in _SN_SUFFIXES:
            key = f"{head}.{_SN_SUFFIXES[last]}" if head else _SN_SUFFIXES[last]
        out[key] = value
    return out


def check_keys_and_shapes(model: nn.Module, state_dict: Mapping[str, Tensor], what: str = "") -> None:
    """Raise listing every missing, unexpected and mis-shaped key (before `load_state_dict`)."""
    ours = model.state_dict()
    missing = sorted(set(ours) - set(state_dict))
    unexpected = sorted(set(state_dict) - set(ours))
    shapes = sorted(
        f"{k}: checkpoint {tuple(state_dict[k].shape)} vs model {tuple(ours[k].shape)}"
        for k in set(ours) & set(state_dict)
        if tuple(ours[k].shape) != tuple(state_dict[k].shape)
    )
    if missing or unexpected or shapes:
        lines = [f"checkpoint does not fit the {what or type(model).__name__} built from these flags:"]
        for title, items in (("missing", missing), ("unexpected", unexpected), ("shape", shapes)):
            if items:
                lines.append(f"  {title} ({len(items)}): " + ", ".join(items[:12]))
                if len(items) > 12:
                    lines.append(f"    ... and {len(items) - 12} more")
        lines.append("  (check label_nc / contain_dontcare_label / no_instance / ngf / use_vae flags)")
        raise ValueError("\n".join(lines))


def load_official_state(
    model: nn.Module,
    state_dict: Mapping[str, Tensor],
    renames: Mapping[str, str | None] | None = None,
    what: str = "",
) -> nn.Module:
    """Rename, check every key and shape, then load strictly."""
    theirs = rename_official(state_dict, renames)
    check_keys_and_shapes(model, theirs, what)
    with torch.no_grad():
        model.load_state_dict(theirs, strict=True)
    return model


class OfficialFileError(ValueError):
    """An official checkpoint file condgen will not read (not a plain weights file); the message names it."""


def read_state_dict(source: Mapping[str, Tensor] | str | Path, what: str) -> Mapping[str, Tensor]:
    """A released state dict as given, or read safely (`weights_only`) from its file; `what` names it."""
    import pickle

    if isinstance(source, (str, Path)):
        path = Path(source)
        if not path.is_file():
            raise FileNotFoundError(f"{what} checkpoint {path} does not exist")
        try:
            return torch.load(path, map_location="cpu", weights_only=True)
        except pickle.UnpicklingError:
            # torch's own message advises weights_only=False, which would run whatever code the file holds
            raise OfficialFileError(
                f"{path}: not a plain weights file: besides tensors it holds Python objects that condgen "
                f"does not load (loading them could run code from the file). The released {what} checkpoints "
                "are plain state dicts; get the file from the official release again"
            ) from None
        except (RuntimeError, EOFError, OSError, ValueError) as err:
            raise OfficialFileError(
                f"{path}: not a readable PyTorch checkpoint ({type(err).__name__}); it may be truncated: "
                "download it again"
            ) from None
    return source
