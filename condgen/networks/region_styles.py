"""Per-region styles for SEAN generators: compose a style matrix from images and vectors, save and reload it.

A SEAN generator takes a style matrix (b, K, S): row j is region j's style code. Here it is put together from
- a default style image (its regions read with the label map being synthesised, resized to the photo, or with
  the photo's own label map), and
- per-class overrides `region_styles={class: source}`, each source a photo (read the same way), a photo with
  its own label map `(photo, label_map)`, or a style vector (S,) (e.g. one saved earlier);
and saved as a `.safetensors` file of vectors per class (`save_styles` / `load_styles`), so a look can be
reused. `interpolate(a, b, alpha)` mixes two styles, `(1 - alpha) a + alpha b`, as the original's editor.
A class with no pixels in the photo that should give its style is an error naming the class.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Union

import torch
import torch.nn.functional as F
from torch import Tensor, nn

# A style source: a photo (1, 3, H, W) in [-1, 1], a photo with its label map (1, K, H', W'), or a vector (S,)
StyleSource = Union[Tensor, tuple[Tensor, Tensor]]


def _read_photo(G: nn.Module, source: StyleSource, seg: Tensor) -> tuple[Tensor, Tensor]:
    """(styles (K, S), present (K,)) of one photo, its regions read with its own label map or with `seg`."""
    photo, labels = source if isinstance(source, tuple) else (source, seg[:1])
    if photo.dim() == 3:
        photo = photo[None]
    if labels.shape[-2:] != photo.shape[-2:]:
        labels = F.interpolate(labels.to(photo.dtype), size=photo.shape[-2:], mode="nearest")
    styles = G.encode_style(photo, labels)[0]
    present = (labels[0] != 0).flatten(1).any(1)
    return styles, present


def compose_styles(
    G: nn.Module,
    seg: Tensor,
    *,
    style: StyleSource | None = None,
    region_styles: Mapping[int, StyleSource] | None = None,
    names: Sequence[str] = (),
) -> Tensor:
    """The style matrix (b, K, S) for label maps `seg` (b, K, H, W).

    Args:
        G: a SEAN generator (`encode_style`, `style_dim`).
        style: the default style: a photo, (photo, its label map), or a style matrix (K, S) / (b, K, S).
            None: zero rows (each region's MLP bias only).
        region_styles: {class index: photo | (photo, label map) | vector (S,)}, overriding single rows.
        names: class names, for error messages.
    """
    b, k = seg.shape[:2]
    with torch.no_grad():
        if style is None:
            rows = seg.new_zeros(k, G.style_dim)
        elif isinstance(style, Tensor) and style.dim() in (2, 3) and style.shape[-1] == G.style_dim:
            rows = style
        else:
            rows, _ = _read_photo(G, style, seg)
        rows = rows.to(seg).expand(b, k, G.style_dim).clone()
        for j, source in (region_styles or {}).items():
            name = names[j] if j < len(names) else f"class {j}"
            if not 0 <= j < k:
                raise ValueError(f"region_styles names class {j}, but the label map has {k} channels")
            if isinstance(source, Tensor) and source.dim() == 1:
                if source.numel() != G.style_dim:
                    raise ValueError(
                        f"style vector for {name!r} has {source.numel()} values; this model's styles are "
                        f"{G.style_dim} wide"
                    )
                rows[:, j] = source.to(seg)
                continue
            styles, present = _read_photo(G, source, seg)
            if not present[j]:
                raise ValueError(
                    f"the style photo for {name!r} has no {name!r} region under its label map; give the "
                    "photo's own label map, as (photo, label_map), or pick a class it shows"
                )
            rows[:, j] = styles[j]
    return rows


def interpolate(a: Tensor, b: Tensor, alpha: float) -> Tensor:
    """(1 - alpha) * a + alpha * b: alpha 0 is a, 1 is b (the original editor's mixing)."""
    return (1 - alpha) * a + alpha * b


def save_styles(
    path: str | Path, styles: Tensor, names: Sequence[str] = (), present: Tensor | None = None
) -> Path:
    """Write a style matrix (K, S) as `.safetensors` (`styles`, `present`; class names in the metadata)."""
    from safetensors.torch import save_file

    path = Path(path)
    if path.suffix != ".safetensors":
        raise ValueError(f"style file {path} must end in .safetensors")
    if styles.dim() != 2:
        raise ValueError(f"save one style matrix (K, S) per file, got shape {tuple(styles.shape)}")
    if present is None:
        present = styles.abs().amax(1) > 0
    meta = {"format": "condgen-region-styles", "names": "\n".join(names)}
    save_file({"styles": styles.detach().float().contiguous().cpu(), "present": present.bool().cpu()},
              str(path), metadata=meta)
    return path


def load_styles(path: str | Path) -> tuple[Tensor, Tensor, list[str]]:
    """(styles (K, S), present (K,), class names) from a file `save_styles` wrote."""
    from safetensors import safe_open

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"style file {path} does not exist")
    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata() or {}
        if meta.get("format") != "condgen-region-styles":
            raise ValueError(f"{path} is not a condgen style file (written by condgen's save_styles)")
        names = [n for n in meta.get("names", "").split("\n") if n]
        return f.get_tensor("styles"), f.get_tensor("present"), names
