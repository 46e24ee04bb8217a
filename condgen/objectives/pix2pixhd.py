"""The pix2pixHD objective of SPADE and CC-FPSE (SPADE Sec. 4 / appendix A; CC-FPSE Sec. 3.3).

G step: hinge GAN on D(fake) + lambda_feat x feature matching + lambda_vgg x VGG19 perceptual
(+ lambda_kld x KL of the VAE encoder). D step: hinge on D(real) and D(fake), the fake from G under
no_grad. Fake and real go through D as one batch (official `discriminate`). Term names are the official
ones (`G_GAN`, `G_feat`, `G_VGG`, `G_KLD`, `D_fake`, `D_real`).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from condgen.losses.feature_matching import FeatureMatchingLoss
from condgen.losses.gan import GANLoss
from condgen.losses.kl import KLDLoss
from condgen.losses.perceptual import VGGLoss
from condgen.networks.discriminator import discriminate
from condgen.networks.vae_encoder import reparameterize
from condgen.objectives.base import Objective
from condgen.registry import register


@register("objective")
class Pix2PixHDObjective(Objective):
    """Hinge GAN + feature matching + VGG (+ KL): SPADE's and CC-FPSE's losses.

    Args:
        lambda_feat: weight of discriminator feature matching (official 10; CC-FPSE's scripts 20);
            0 switches it off.
        lambda_vgg: weight of the VGG19 perceptual loss (official 10); 0 switches it off and the VGG19
            file is then not needed.
        lambda_kld: weight of the encoder's KL term, used when there is an encoder (official 0.05).
        gan_loss, feat_loss, vgg_loss, kld_loss: the loss classes (their options are their own bindings).
    """

    loss_names = ("G_GAN", "G_feat", "G_VGG", "G_KLD", "D_fake", "D_real")

    def __init__(
        self,
        *,
        lambda_feat: float = 10.0,
        lambda_vgg: float = 10.0,
        lambda_kld: float = 0.05,
        gan_loss: Any = GANLoss,
        feat_loss: Any = FeatureMatchingLoss,
        vgg_loss: Any = VGGLoss,
        kld_loss: Any = KLDLoss,
    ) -> None:
        super().__init__()
        self.lambda_feat, self.lambda_vgg, self.lambda_kld = lambda_feat, lambda_vgg, lambda_kld
        self.gan_loss = gan_loss()
        self.feat_loss = feat_loss() if lambda_feat else None
        self.vgg_loss = vgg_loss() if lambda_vgg else None
        self.kld_loss = kld_loss() if lambda_kld else None
        if getattr(self.kld_loss, "reduction", None) == "sum":
            self.batch_summed = ("G_KLD",)  # summed over the micro-batches of an update, as over a batch

    def generate(
        self, G: nn.Module, E: nn.Module | None, seg: Tensor, real: Tensor, *, with_kld: bool
    ) -> tuple[Tensor, Tensor | None]:
        """Fake images for `seg`; with the VAE, z is encoded from `real` (official `generate_fake`)."""
        if E is None:
            return G(seg), None
        mu, logvar = E(real)
        kld = self.kld_loss(mu, logvar) * self.lambda_kld if with_kld and self.kld_loss is not None else None
        return G(seg, reparameterize(mu, logvar)), kld

    def generator_losses(
        self, G: nn.Module, D: nn.Module, E: nn.Module | None, seg: Tensor, real: Tensor
    ) -> dict[str, Tensor]:
        fake, kld = self.generate(G, E, seg, real, with_kld=True)
        pred_fake, pred_real = discriminate(D, fake, real, seg)
        losses = {"G_GAN": self.gan_loss(pred_fake.logits, real=True, for_discriminator=False)}
        if self.feat_loss is not None:
            feats = (pred_fake.features, pred_real.features, pred_fake.feature_weights)
            losses["G_feat"] = self.lambda_feat * self.feat_loss(*feats)
        if self.vgg_loss is not None:
            losses["G_VGG"] = self.lambda_vgg * self.vgg_loss(fake, real)
        if kld is not None:
            losses["G_KLD"] = kld
        return losses

    def discriminator_losses(
        self, G: nn.Module, D: nn.Module, E: nn.Module | None, seg: Tensor, real: Tensor
    ) -> dict[str, Tensor]:
        with torch.no_grad():
            fake, _ = self.generate(G, E, seg, real, with_kld=False)
        pred_fake, pred_real = discriminate(D, fake.detach(), real, seg)
        return {
            "D_fake": self.gan_loss(pred_fake.logits, real=False),
            "D_real": self.gan_loss(pred_real.logits, real=True),
        }
