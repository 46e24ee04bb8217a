"""OASIS's 3-D noise as a condition source (OASIS, Sec. 3.3): a latent map concatenated before the label map.

`label_input(seg, z)` = cat(noise map, seg), the `z_dim` noise channels first (OASIS's order), so `fc` and
every SPADE layer read `z_dim + semantic_nc` channels. A vector z (b, z_dim), or N(0, I) drawn per image
when z is None, is replicated over the map (the original: spatially constant noise within an image); a map
z (b, z_dim, H, W) is used as given, which is how local resampling (new noise inside one region) works.
With `use_vae=False` the generator hands its z to `label_input`, so "SPADE with 3-D noise instead of the
VAE" is `SPADEGenerator.condition = @NoiseCondition`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from condgen.blocks.condition import ConditionSource
from condgen.ops.label_conv import cat_labels
from condgen.registry import register


@register("condition")
class NoiseCondition(ConditionSource):
    """Label map with a `z_dim`-channel noise map in front (OASIS's 3-D noise).

    Args:
        semantic_nc: label channels of `seg`.
        num_levels, ngf: the generator's (unused: one full-resolution map serves every block).
        z_dim: noise channels (OASIS: 64).
    """

    def __init__(self, semantic_nc: int, *, num_levels: int = 6, ngf: int = 64, z_dim: int = 64) -> None:
        super().__init__(semantic_nc)
        self.z_dim = z_dim
        self.cond_nc = z_dim + semantic_nc
        self.num_levels = num_levels

    @property
    def fc_nc(self) -> int:
        return self.cond_nc

    def noise_map(self, seg: Tensor, z: Tensor | None = None) -> Tensor:
        """(b, z_dim, H, W) at `seg`'s size: z replicated (vector), nearest-resized (map), or drawn."""
        b, _, h, w = seg.shape
        if z is None:
            z = torch.randn(b, self.z_dim, device=seg.device, dtype=seg.dtype)
        if z.dim() == 2:
            z = z[:, :, None, None]
        if z.dim() != 4 or z.shape[:2] != (b, self.z_dim):
            raise ValueError(
                f"noise z must be (b, {self.z_dim}) or (b, {self.z_dim}, H, W) for a batch of {b}, "
                f"got {tuple(z.shape)}"
            )
        if z.shape[-2:] == (1, 1):
            return z.to(seg).expand(b, self.z_dim, h, w)
        if z.shape[-2:] != (h, w):
            z = F.interpolate(z, size=(h, w), mode="nearest")
        return z.to(seg)

    def label_input(self, seg: Tensor, z: Tensor | None = None) -> Tensor:
        """cat(noise map, seg), labelled so that convolutions read its label channels label-sparse."""
        return cat_labels(seg, before=self.noise_map(seg, z))

    def forward(self, labels: Tensor) -> list[Tensor]:
        return [labels]
