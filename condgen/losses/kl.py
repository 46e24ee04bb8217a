"""KL divergence of the VAE style encoder's posterior to N(0, I) (SPADE Sec. 3.3 and appendix B).

Official semantics (`reduction='sum'`): `-0.5 * sum(1 + logvar - mu^2 - exp(logvar))` over the batch *and*
the latent dims, so its weight (lambda_kld = 0.05) effectively grows with the per-device batch size (the
official trainer sums per GPU, then averages over GPUs). `reduction='mean'` divides by the batch size: the
per-sample KL, independent of the batch.
"""

from __future__ import annotations

from torch import Tensor, nn

from condgen.registry import register

REDUCTIONS = ("sum", "mean")


@register("loss")
class KLDLoss(nn.Module):
    """KL(N(mu, exp(logvar)) || N(0, I)).

    Args:
        reduction: 'sum' over batch and dims (official), or 'mean' = that sum divided by the batch size.
    """

    def __init__(self, *, reduction: str = "sum") -> None:
        super().__init__()
        if reduction not in REDUCTIONS:
            raise ValueError(
                f"KLDLoss reduction {reduction!r} is unknown; choose one of {', '.join(REDUCTIONS)}"
            )
        self.reduction = reduction

    def forward(self, mu: Tensor, logvar: Tensor) -> Tensor:
        """mu, logvar: (b, z_dim) -> 0-dim tensor."""
        kld = -0.5 * (1 + logvar - mu.pow(2) - logvar.exp()).sum()
        return kld / mu.shape[0] if self.reduction == "mean" else kld
