"""SEAN's objective (SEAN Sec. 4; original `Pix2PixModel` of ZPdesu/SEAN): pix2pixHD's, reconstructing.

The generator gets the real image as its style source (`G(seg, real)`: the real image's per-region styles),
so every G step is a reconstruction; the losses are SPADE's hinge GAN + 10 x feature matching + 10 x VGG.
The original declares `lambda_kld` but computes no KL (there is no VAE), so there is no KL term here.
"""

from __future__ import annotations

from typing import Any

from torch import Tensor, nn

from condgen.objectives.pix2pixhd import Pix2PixHDObjective
from condgen.registry import register


@register("objective")
class SEANObjective(Pix2PixHDObjective):
    """Hinge GAN + feature matching + VGG on reconstructions from the real image's region styles.

    Args:
        lambda_feat, lambda_vgg: as `Pix2PixHDObjective` (original 10, 10).
        kwargs: the loss classes, as `Pix2PixHDObjective`.
    """

    loss_names = ("G_GAN", "G_feat", "G_VGG", "D_fake", "D_real")  # no VAE, so no G_KLD

    def __init__(self, *, lambda_feat: float = 10.0, lambda_vgg: float = 10.0, **kwargs: Any) -> None:
        super().__init__(lambda_feat=lambda_feat, lambda_vgg=lambda_vgg, lambda_kld=0.0, **kwargs)

    def generate(
        self, G: nn.Module, E: nn.Module | None, seg: Tensor, real: Tensor, *, with_kld: bool
    ) -> tuple[Tensor, Tensor | None]:
        """The fake for `seg` in the styles of `real`'s regions (original `generate_fake`)."""
        if E is not None:
            raise ValueError("SEANObjective: SEAN has no VAE encoder (its style encoder is inside G); "
                             "bind build_gan.encoder = None")
        return G(seg, real), None
