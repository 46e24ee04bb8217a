"""Discriminator feature-matching loss (pix2pixHD Eq. 4; SPADE and CC-FPSE `GAN_Feat`).

`sum_i w_i * L1(feat_i(fake), feat_i(real).detach())`, the features and weights given by the discriminator's
`split(outputs)`: MultiscalePatchDiscriminator = every scale's intermediate features at 1/num_D each (logits
excluded), FPSEDiscriminator = the 4 encoder features at 1/4 each. The trainer multiplies by lambda_feat
(SPADE 10, CC-FPSE's train.sh 20).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from condgen.registry import register


@register("loss")
class FeatureMatchingLoss(nn.Module):
    """Weighted sum of L1 distances between D's features of fake and (detached) real images."""

    def forward(
        self, fake_features: list[Tensor], real_features: list[Tensor], weights: list[float]
    ) -> Tensor:
        """Lists of equal length, each pair of identical shape; returns a 0-dim tensor."""
        if not len(fake_features) == len(real_features) == len(weights):
            raise ValueError(
                f"feature matching got {len(fake_features)} fake features, {len(real_features)} real "
                f"ones and {len(weights)} weights; pass the split outputs of one D for fake and for real"
            )
        if not weights:
            raise ValueError("feature matching got no features")
        terms = []
        for i, (fake, real, w) in enumerate(zip(fake_features, real_features, weights, strict=True)):
            if fake.shape != real.shape:  # l1_loss would broadcast silently
                raise ValueError(f"feature {i}: fake {tuple(fake.shape)} vs real {tuple(real.shape)}")
            terms.append(w * F.l1_loss(fake, real.detach()))
        return torch.stack(terms).sum()
