"""A user's objective, outside condgen: least-squares GAN on the discriminator's logits, no other term."""

import torch

from condgen.networks.discriminator import discriminate
from condgen.objectives import Objective
from condgen.registry import register


@register("objective")
class ToyLSObjective(Objective):
    def __init__(self, *, weight: float = 1.0) -> None:
        super().__init__()
        self.weight = weight

    def generator_losses(self, G, D, E, seg, real):
        fake_out, _ = discriminate(D, G(seg), real, seg)
        return {"G_toy": self.weight * sum(((x - 1) ** 2).mean() for x in fake_out.logits)}

    def discriminator_losses(self, G, D, E, seg, real):
        with torch.no_grad():
            fake = G(seg)
        fake_out, real_out = discriminate(D, fake, real, seg)
        return {
            "D_toy_fake": sum((x**2).mean() for x in fake_out.logits),
            "D_toy_real": sum(((x - 1) ** 2).mean() for x in real_out.logits),
        }
