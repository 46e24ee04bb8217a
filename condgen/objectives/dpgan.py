"""The DP-GAN objective (DP-GAN, BMVC 2022): OASIS's losses + feature alignment + multi-scale hinge.

On top of `OASISObjective` (class-balanced N+1 cross-entropy, LabelMix), with D = `DPGANDiscriminator`
returning (logits, [score_0, score_1], decoder features f_1..f_5):
- G step: D also runs on the real image (a second train-mode call, as the original) and
  `G_align = lambda_align * sum_l mean((f_l(fake) - f_l(real))^2)` (nothing detached);
  `G_ms_hinge = 1/2 sum_s -mean(score_s(fake))`;
- D step: `D_ms_fake = 1/2 sum_s mean(relu(1 + score_s(fake)))`,
  `D_ms_real = 1/2 sum_s mean(relu(1 - score_s(real)))`.
The original adds the three hinge terms as Python numbers (`.item()`): they show in the logged totals but
carry no gradient, so the heads are never trained. With the discriminator's `train_heads = False` (the
default, "official") the terms are added detached, which is exactly that; with `train_heads = True` they
carry their gradients (G through the fake's scores, D's heads through both).
Terms come in the original's order (G: adv, ms, align; D: fake, ms fake, real, ms real, LabelMix).
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from condgen.networks.discriminator import unwrap
from condgen.objectives.oasis import OASISObjective, labelmix_mask, n1_cross_entropy
from condgen.registry import register


def multiscale_hinge(scores: list[Tensor], *, sign: float | None) -> Tensor:
    """1/2 sum over the heads: -mean(s) (sign None, the G term), mean(relu(1 + sign * s)) otherwise."""
    terms = [-s.mean() if sign is None else F.relu(1 + sign * s).mean() for s in scores]
    return sum(terms) / len(terms)  # type: ignore[return-value]


def feature_alignment(fake: list[Tensor], real: list[Tensor]) -> Tensor:
    """sum over levels of the mean squared difference of D's decoder features."""
    return sum(F.mse_loss(f, r) for f, r in zip(fake, real, strict=True))  # type: ignore[return-value]


@register("objective")
class DPGANObjective(OASISObjective):
    """DP-GAN's losses: OASIS's (N+1 CE, LabelMix) + feature alignment (G) + multi-scale hinge (G and D).

    Args:
        lambda_align: weight of the feature-alignment term (original 1).
        lambda_ms: weight of the multi-scale hinge terms (original 1, as values only: see the module).
        other arguments: `OASISObjective`'s.
    """

    loss_names = ("G_adv", "G_ms_hinge", "G_align", "G_VGG", "D_fake", "D_ms_fake", "D_real", "D_ms_real",
                  "D_labelmix")

    def __init__(self, *, lambda_align: float = 1.0, lambda_ms: float = 1.0, **kwargs) -> None:
        super().__init__(**kwargs)
        self.lambda_align, self.lambda_ms = lambda_align, lambda_ms

    @staticmethod
    def _heads_trained(D: nn.Module) -> bool:
        return bool(getattr(unwrap(D), "train_heads", False))

    def _ms(self, D: nn.Module, value: Tensor) -> Tensor:
        value = self.lambda_ms * value
        return value if self._heads_trained(D) else value.detach()  # the original's `.item()`

    def generator_losses(
        self, G: nn.Module, D: nn.Module, E: nn.Module | None, seg: Tensor, real: Tensor
    ) -> dict[str, Tensor]:
        fake = G(seg)
        target, weight = self.targets(seg)
        out_fake = D(fake, seg)
        out_real = D(real, seg)
        losses = {
            "G_adv": n1_cross_entropy(out_fake.logits, target, weight),
            "G_ms_hinge": self._ms(D, multiscale_hinge(out_fake.scores, sign=None)),
            "G_align": self.lambda_align * feature_alignment(out_fake.features, out_real.features),
        }
        return self._with_vgg(losses, fake, real)

    def discriminator_losses(
        self, G: nn.Module, D: nn.Module, E: nn.Module | None, seg: Tensor, real: Tensor
    ) -> dict[str, Tensor]:
        fake, target, weight, out_fake, out_real = self._discriminator_outputs(G, D, seg, real)
        losses = {
            "D_fake": n1_cross_entropy(out_fake.logits, 0),
            "D_ms_fake": self._ms(D, multiscale_hinge(out_fake.scores, sign=1.0)),
            "D_real": n1_cross_entropy(out_real.logits, target, weight),
            "D_ms_real": self._ms(D, multiscale_hinge(out_real.scores, sign=-1.0)),
        }
        if self.labelmix:
            mask = labelmix_mask(target - 1, class0_quirk=self.labelmix_class0_quirk)
            losses["D_labelmix"] = self.lambda_labelmix * self.labelmix_loss(
                lambda x, s: D(x, s).logits, seg, real, fake, mask, out_real.logits, out_fake.logits
            )
        return losses
