"""KL divergence of the VAE style encoder's posterior to N(0, I) (SPADE Sec. 3.3 and appendix B).

Official semantics (`reduction='sum'`): `-0.5 * sum(1 + logvar - mu^2 - exp(logvar))` over the batch *and*
the latent dims, so its weight (lambda_kld = 0.05) effectively grows with the per-device batch size (the
official trainer sums per GPU, then averages over GPUs): SPADE's 0.05 is meant for 4 images per GPU,
CC-FPSE's for 2, and 32 images on one GPU make it 8x (16x) stronger. `reduction='mean'` divides by the batch
size: the per-sample KL, independent of the batch; with `batch=N` it is multiplied back by N, i.e. the
official weight at N images per process whatever the batch really is. With `train.grad_accum = K` the loop
sums this term over the K micro-batches (`batch_summed`), as one K times larger batch would.
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
        batch: with 'mean', multiply by this many images (the per-process batch whose official weight to
            keep, independent of the real batch); None = 1.
        paper_batch: the per-process batch the experiment's weight was set for (SPADE 4, CC-FPSE 2); with
            'sum', training warns when its per-process batch differs (`condgen.train.setup`).
    """

    def __init__(
        self, *, reduction: str = "sum", batch: int | None = None, paper_batch: int | None = None
    ) -> None:
        super().__init__()
        if reduction not in REDUCTIONS:
            raise ValueError(
                f"KLDLoss reduction {reduction!r} is unknown; choose one of {', '.join(REDUCTIONS)}"
            )
        if batch is not None and reduction != "mean":
            raise ValueError(f"KLDLoss.batch = {batch} needs KLDLoss.reduction = 'mean' (it scales the mean)")
        self.reduction, self.batch, self.paper_batch = reduction, batch, paper_batch

    def forward(self, mu: Tensor, logvar: Tensor) -> Tensor:
        """mu, logvar: (b, z_dim) -> 0-dim tensor."""
        kld = -0.5 * (1 + logvar - mu.pow(2) - logvar.exp()).sum()
        return kld / mu.shape[0] * (self.batch or 1) if self.reduction == "mean" else kld
