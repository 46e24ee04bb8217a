"""Adversarial losses over a list of logit maps (SPADE Sec. 4 / pix2pixHD; CC-FPSE Sec. 3.3).

Every term is the official average over maps (scales or pyramid levels) of each map's element mean, so it does
not depend on how many maps a discriminator returns. Modes: 'hinge' (SPADE and CC-FPSE default), 'ls' (LSGAN,
MSE to 1 / 0) and 'original' (BCE with logits). The logits come from `D.split(outputs).logits`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from condgen.registry import register

MODES = ("hinge", "ls", "original")


@register("loss")
class GANLoss(nn.Module):
    """GAN loss for the discriminator's real and fake terms and the generator's term.

    Args:
        mode: 'hinge' (official default), 'ls' or 'original'.
    """

    def __init__(self, *, mode: str = "hinge") -> None:
        super().__init__()
        if mode not in MODES:
            raise ValueError(f"GANLoss mode {mode!r} is unknown; choose one of {', '.join(MODES)}")
        self.mode = mode

    def forward(self, logits: list[Tensor] | Tensor, *, real: bool, for_discriminator: bool = True) -> Tensor:
        """Mean over the maps of each (b, 1, h, w) map's element-mean loss; a 0-dim tensor.

        real: the target (True for D on real images and always for G); for_discriminator: False = G term.
        """
        maps = [logits] if isinstance(logits, Tensor) else list(logits)
        if not maps:
            raise ValueError("GANLoss got no logit maps; pass D.split(outputs).logits")
        if not for_discriminator and not real:
            raise ValueError("the generator term always targets 'real' (official GANLoss asserts this)")
        return torch.stack([self._map_loss(x, real, for_discriminator) for x in maps]).mean()

    def _map_loss(self, x: Tensor, real: bool, for_discriminator: bool) -> Tensor:
        if self.mode == "hinge":
            if not for_discriminator:
                return -x.mean()
            return F.relu(1 - x).mean() if real else F.relu(1 + x).mean()
        target = torch.full_like(x, 1.0 if real else 0.0)
        if self.mode == "ls":
            return F.mse_loss(x, target)
        return F.binary_cross_entropy_with_logits(x, target)

    def discriminator_real(self, logits: list[Tensor]) -> Tensor:
        """D's loss on real images (hinge: mean relu(1 - x))."""
        return self(logits, real=True)

    def discriminator_fake(self, logits: list[Tensor]) -> Tensor:
        """D's loss on generated images (hinge: mean relu(1 + x))."""
        return self(logits, real=False)

    def generator(self, logits: list[Tensor]) -> Tensor:
        """G's adversarial loss on D(fake) (hinge: -mean x)."""
        return self(logits, real=True, for_discriminator=False)
