"""Per-region styles in the pipeline (SEAN): the 'region_styles' latent kind and its inputs.

    pipe = condgen.load("runs/sean")
    pipe(labels, style="beach.jpg", region_styles={"sky": "sunset.jpg", "water": "look.safetensors"})

`style` is the default look: a photo (path, PIL image or (1, 3, H, W) tensor in [-1, 1]) whose regions are
read with the label map being synthesised (resized to the photo), a `(photo, label map)` pair (the photo's
own map: a PNG path or ids), or a style file (`.safetensors`, `condgen.networks.region_styles.save_styles`).
`region_styles` maps classes (ids or names) to the same kinds of sources, or to a style vector (S,); a style
file there gives that class's row. The per-pixel noise is seeded from (seed, first map index, sample), so a
seed repeats an image exactly.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from condgen.infer.latents import Draw, LatentKind, _seed_of, register_latent_kind
from condgen.networks.region_styles import compose_styles, load_styles


def _is_region(G: Any) -> bool:
    return hasattr(G, "encode_style") and hasattr(G, "style_dim")


def _generate(G: Any, seg: Tensor, d: Draw) -> Tensor:
    from condgen.networks.discriminator import unwrap

    net = unwrap(G)
    styles = compose_styles(net, seg, style=d.style, region_styles=d.region_styles)
    devices = [seg.device] if seg.device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(_seed_of(d.seed, d.indices[0] if d.indices else 0, d.sample))
        return G(seg, styles)


REGION_STYLES = register_latent_kind(
    LatentKind("region_styles", "per-region styles (SEAN)", _is_region, _generate,
               frozenset({"style", "region_styles"}), multimodal=False)
)


def _photo(pipe: Any, value: Any, what: str) -> Tensor:
    """A photo (path / PIL / tensor) -> (1, 3, H, W) in [-1, 1] at the model's size (bicubic)."""
    if isinstance(value, Tensor):
        return value if value.dim() == 4 else value[None]
    if isinstance(value, (str, Path)):
        if not Path(value).is_file():
            raise FileNotFoundError(f"{what}: {value} does not exist")
        value = Image.open(value)
    h, w = pipe.spec.size
    rgb = np.asarray(value.convert("RGB").resize((w, h), Image.BICUBIC), dtype=np.float32)
    return torch.from_numpy(rgb).permute(2, 0, 1)[None] / 127.5 - 1


def _source(pipe: Any, value: Any, what: str, channel: int | None = None) -> Any:
    """One style source in the form `compose_styles` takes."""
    if isinstance(value, (str, Path)) and str(value).endswith(".safetensors"):
        styles, present, _ = load_styles(value)
        if channel is None:
            return styles
        if not present[channel]:
            raise ValueError(f"{what}: the style file {value} has no style for this class (it was absent)")
        return styles[channel]
    if isinstance(value, Tensor) and value.dim() in (1, 2):
        return value
    if isinstance(value, tuple):
        photo, labels = value
        _, ids, _ = pipe.read_labels(labels if isinstance(labels, (Tensor, np.ndarray)) else [labels], None)
        if channel is not None and not (ids == channel).any():
            name = pipe.dataset.name_of(channel)
            raise ValueError(f"{what}: the photo's label map has no {name!r} region to take a style from")
        return _photo(pipe, photo, what).to(pipe.device), pipe.encode(ids)
    return _photo(pipe, value, what).to(pipe.device)


def region_inputs(pipe: Any, style: Any, region_styles: dict | None) -> tuple[Any, dict[int, Any] | None]:
    """`style` and `region_styles` as given to the pipeline -> the tensors `compose_styles` takes."""
    default = None if style is None else _source(pipe, style, "style")
    regions = None
    if region_styles:
        regions = {}
        for key, value in region_styles.items():
            try:
                channel = pipe.dataset.class_id(key)
            except ValueError:
                names = ", ".join(pipe.dataset.class_names) or f"ids 0..{pipe.dataset.label_nc - 1}"
                raise ValueError(f"region style {key!r}: not a class of this model ({names})") from None
            regions[channel] = _source(pipe, value, f"region style {key!r}", channel)
    return default, regions
