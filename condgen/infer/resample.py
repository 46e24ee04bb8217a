"""Multi-modal sampling with OASIS's 3-D noise (OASIS Sec. 3.3 / Fig. 1): per-image and local resampling.

Works with any generator whose condition source takes a noise map (`NoiseCondition`: `OASISGenerator`, or
`SPADEGenerator.condition = @NoiseCondition`). `synthesize --samples N --resample_class C` uses
`local_resample` with noise seeded per (seed, map, sample); these functions take any noise or generator.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from condgen.blocks.noise import NoiseCondition
from condgen.networks.discriminator import unwrap


def _noise_source(G: nn.Module) -> NoiseCondition:
    cond = getattr(unwrap(G), "condition", None)
    if not isinstance(cond, NoiseCondition):
        raise TypeError(f"{type(unwrap(G)).__name__} has no 3-D noise (condition {type(cond).__name__})")
    return cond


@torch.no_grad()
def resample_images(G: nn.Module, seg: Tensor, n: int, *, generator: torch.Generator | None = None) -> Tensor:
    """n images per label map, each with its own noise vector: (n, b, 3, H, W)."""
    cond = _noise_source(G)
    outs = []
    for _ in range(n):
        z = torch.randn(seg.shape[0], cond.z_dim, generator=generator).to(seg)
        outs.append(G(seg, z))
    return torch.stack(outs)


@torch.no_grad()
def local_resample(
    G: nn.Module, seg: Tensor, z: Tensor, channel: int, *, new_z: Tensor | None = None
) -> tuple[Tensor, Tensor]:
    """Redraw the noise inside one class's region only (OASIS's local resampling).

    Args:
        seg: (b, C, H, W) label map; `channel` is the class whose pixels get new noise.
        z: the current noise, (b, z_dim) or a (b, z_dim, H, W) map.
        new_z: the noise for the region, (b, z_dim) (drawn when None).
    Returns:
        (image (b, 3, H, W), the noise map used (b, z_dim, H, W)), so that resampling can be chained.
    """
    cond = _noise_source(G)
    old = cond.noise_map(seg, z)
    new = cond.noise_map(seg, new_z if new_z is not None else torch.randn_like(old[:, :, 0, 0]))
    region = seg[:, channel : channel + 1] > 0.5
    z_map = torch.where(region, new, old)
    return G(seg, z_map), z_map
