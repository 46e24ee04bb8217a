"""Latents and the generator call: what makes a generator multi-modal, and how one image is drawn.

Latents are drawn per (seed, image index, sample index) from their own `torch.Generator`, so an image never
depends on batch size, process count or what else is generated: a fixed seed gives identical outputs.

A *latent kind* says how a generator is called. Three are built in: 'vae' (a z vector into `fc`, optionally
a style image's posterior), 'noise' (OASIS's 3-D noise through `NoiseCondition`) and 'none' (label map
only). A new model plugs in its own with `register_latent_kind(LatentKind(...))` and names it on its
generator class (`latent_kind = "diffusion"`), so the pipeline and every caller of `generate` handle it
without edits here: a diffusion sampler (`steps`) or per-region styles (`region_styles`) are such kinds.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from condgen.data.spec import DataSpec

NO_LATENT = (
    "this generator takes no latent (no VAE, no 3-D noise), so every sample would be identical; resampling "
    "needs a generator with 3-D noise (OASIS, `condition = @NoiseCondition`) or a VAE (use_vae = True)"
)


class UnsupportedInput(NotImplementedError):
    """The model's latent kind does not take this input (`region_styles`, `steps`, ...)."""


def _seed_of(*values: int) -> int:
    """A well-spread 63-bit seed from a few integers (numpy's SeedSequence hashing)."""
    state = np.random.SeedSequence([v & 0xFFFFFFFF for v in values]).generate_state(2, dtype=np.uint64)
    return int(state[0] >> np.uint64(1))


def latents(z_dim: int, indices: list[int], *, seed: int, sample: int = 0) -> Tensor:
    """(len(indices), z_dim) N(0, I) latents, each from its own generator seeded by (seed, index, sample)."""
    rows = [
        torch.randn(z_dim, generator=torch.Generator().manual_seed(_seed_of(seed, i, sample)))
        for i in indices
    ]
    return torch.stack(rows)


def unwrap_condition(G: Any) -> Any:
    """The condition source of a (possibly wrapped) generator."""
    from condgen.networks.discriminator import unwrap

    return unwrap(G).condition


@dataclass(frozen=True)
class Draw:
    """One generator call's inputs besides the label map: which images and samples, and the options."""

    indices: list[int]
    seed: int
    sample: int = 0
    style: tuple[Tensor, Tensor] | None = None  # (mu, logvar) of a style image
    region_styles: Any = None
    steps: int | None = None


@dataclass(frozen=True)
class LatentKind:
    """How a family of generators is called.

    Attributes:
        name: the kind's name ('none', 'vae', 'noise', 'diffusion', ...), as `latent_kind(G)` returns it.
        describe: the `synthesis.json` / protocol text for it.
        detect: G -> whether G is of this kind (when G's class names no `latent_kind`).
        generate: (G, seg, Draw) -> images (b, 3, H, W) in [-1, 1].
        accepts: the optional inputs it honours, among 'style', 'region_styles', 'steps', 'resample'.
        multimodal: different samples differ (the pipeline refuses samples > 1 otherwise).
    """

    name: str
    describe: str
    detect: Callable[[Any], bool]
    generate: Callable[[Any, Tensor, Draw], Tensor]
    accepts: frozenset[str] = field(default_factory=frozenset)
    multimodal: bool = True


LATENT_KINDS: dict[str, LatentKind] = {}


def register_latent_kind(kind: LatentKind) -> LatentKind:
    """Add (or replace) a latent kind; kinds registered later are detected first."""
    LATENT_KINDS.pop(kind.name, None)
    items = list(LATENT_KINDS.items())
    LATENT_KINDS.clear()
    LATENT_KINDS.update({kind.name: kind, **dict(items)})
    return kind


def kind_of(G: Any) -> LatentKind:
    """The registered `LatentKind` of a generator: its class's `latent_kind` name, else the first match."""
    from condgen.networks.discriminator import unwrap

    G = unwrap(G)
    named = getattr(type(G), "latent_kind", None)
    if isinstance(named, str):
        if named not in LATENT_KINDS:
            raise KeyError(
                f"{type(G).__name__}.latent_kind = {named!r} is not registered; known: "
                f"{', '.join(LATENT_KINDS)} "
                "(register it with condgen.infer.register_latent_kind)"
            )
        return LATENT_KINDS[named]
    return next(k for k in LATENT_KINDS.values() if k.detect(G))


def latent_kind(G: Any) -> str | None:
    """What makes a generator multi-modal: 'vae' (a z vector into `fc`), 'noise' (OASIS's 3-D noise,
    `NoiseCondition`), another registered kind's name, or None (label map only: one image per map)."""
    name = kind_of(G).name
    return None if name == "none" else name


def _none(G: Any, seg: Tensor, d: Draw) -> Tensor:
    return G(seg)


def _noise(G: Any, seg: Tensor, d: Draw) -> Tensor:
    z_dim = unwrap_condition(G).z_dim
    return G(seg, latents(z_dim, d.indices, seed=d.seed, sample=d.sample).to(seg.device, seg.dtype))


def _vae(G: Any, seg: Tensor, d: Draw) -> Tensor:
    from condgen.networks.discriminator import unwrap

    eps = latents(unwrap(G).z_dim, d.indices, seed=d.seed, sample=d.sample).to(seg.device, seg.dtype)
    if d.style is None:
        return G(seg, eps)
    mu, logvar = d.style
    z = mu if d.sample == 0 else mu + torch.exp(0.5 * logvar) * eps
    return G(seg, z.expand(seg.shape[0], -1))


def _is_noise(G: Any) -> bool:
    from condgen.blocks.noise import NoiseCondition

    return isinstance(getattr(G, "condition", None), NoiseCondition)


# detection order: the last registered first, 'none' (matches everything) last
register_latent_kind(LatentKind("none", "none (label map only)", lambda G: True, _none, multimodal=False))
register_latent_kind(LatentKind("noise", "3-D noise", _is_noise, _noise, frozenset({"resample"})))
register_latent_kind(
    LatentKind("vae", "VAE z", lambda G: bool(getattr(G, "use_vae", False)), _vae, frozenset({"style"}))
)


def check_inputs(kind: LatentKind, model: str, **given: Any) -> None:
    """A clear error for an option the model's kind does not take (`style`, `region_styles`, `steps`)."""
    for name, value in given.items():
        if value is not None and name not in kind.accepts:
            takes = ", ".join(sorted(kind.accepts)) or "none of them"
            raise UnsupportedInput(
                f"{model}: {name}= is not supported by this model (latent kind {kind.name!r}: "
                f"{kind.describe}; it takes {takes}). Models of a kind that accepts {name!r} (registered "
                "with condgen.infer.register_latent_kind) do"
            )


@torch.no_grad()
def generate(
    gan: Any,
    seg: Tensor,
    indices: list[int],
    *,
    seed: int,
    sample: int = 0,
    style: tuple[Tensor, Tensor] | None = None,
    region_styles: Any = None,
    steps: int | None = None,
) -> Tensor:
    """Images (b, 3, H, W) in [-1, 1] for `seg`; latents from (seed, index, sample) when G takes one.

    A VAE generator gets a z vector; a 3-D noise generator (OASIS) a noise vector per image, replicated
    over the map; both drawn per (seed, index, sample), so outputs never depend on the global RNG. Other
    kinds (`register_latent_kind`) get the same `Draw`.

    Args:
        gan: anything with the generator as `.G` (a `GAN`, a `SynthesisPipeline`).
        style: (mu, logvar) of a style image (b or 1 rows); sample 0 uses mu, others mu + std * eps.
    """
    kind = kind_of(gan.G)
    check_inputs(kind, type(gan.G).__name__, region_styles=region_styles, steps=steps)
    if "style" not in kind.accepts:  # kinds without styles ignored it before this module too
        style = None
    return kind.generate(gan.G, seg, Draw(list(indices), seed, sample, style, region_styles, steps))


def encode_style(
    gan: Any, image: Image.Image, spec: DataSpec, *, device: str = "cpu"
) -> tuple[Tensor, tuple[Tensor, Tensor]]:
    """A style photo (any size) -> (its (1, 3, H, W) image in [-1, 1], (mu, logvar) from the VAE encoder).

    The photo is resized (bicubic) to the model's size; `generate(..., style=(mu, logvar))` uses the stats.
    """
    h, w = spec.size
    pil = image.convert("RGB").resize((w, h), Image.BICUBIC)
    img = torch.from_numpy(np.asarray(pil).copy()).permute(2, 0, 1).float()[None] / 127.5 - 1
    with torch.no_grad():
        stats = gan.E(img.to(device))
    return img, stats


def local(gan: Any, seg: Tensor, idx: list[int], *, seed: int, sample: int, channel: int) -> Tensor:
    """OASIS local resampling: sample 0's noise everywhere, sample `sample`'s inside `channel`'s region."""
    from condgen.infer.resample import local_resample

    z_dim = unwrap_condition(gan.G).z_dim
    z0 = latents(z_dim, idx, seed=seed, sample=0).to(seg.device, seg.dtype)
    zk = latents(z_dim, idx, seed=seed, sample=sample).to(seg.device, seg.dtype)
    return local_resample(gan.G, seg, z0, channel, new_z=zk)[0]


def to_uint8_image(img: Tensor) -> np.ndarray:
    """(3, H, W) in [-1, 1] -> (H, W, 3) uint8: the rounding every condgen PNG uses."""
    return ((img.float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(1, 2, 0).cpu().numpy()
