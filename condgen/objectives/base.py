"""The objective contract: the loss terms of one G step and one D step, on plain modules.

`generator_losses` and `discriminator_losses` return {name: weighted 0-dim tensor}; the loop backpropagates
their sum (`total`) and logs each term under its name. They run on whatever the loop hands them (DDP- or
compile-wrapped modules): call the networks directly and reach their methods through `unwrap` (see
`condgen.networks.discriminator`). Everything an objective needs beyond (G, D, E, seg, real) is its own gin
parameter, so an objective is unit-testable without Accelerate.
"""

from __future__ import annotations

from torch import Tensor, nn


class Objective(nn.Module):
    """Base class of registered objectives (`@register("objective")`). Loss modules are submodules, so
    `objective.to(device)` moves them with it.

    `discriminator_losses` is called with G (and E) in train mode; it must generate the fake under
    `torch.no_grad()` and detach it (D's update must not reach G).

    `batch_summed` names the terms that are sums over the batch (the VAE's KL) rather than means: with
    `train.grad_accum = K` the loop averages every other term over the K micro-batches and sums these, so
    that an update weighs each term as one K times larger batch would.
    """

    batch_summed: tuple[str, ...] = ()

    def generator_losses(
        self, G: nn.Module, D: nn.Module, E: nn.Module | None, seg: Tensor, real: Tensor
    ) -> dict[str, Tensor]:
        raise NotImplementedError

    def discriminator_losses(
        self, G: nn.Module, D: nn.Module, E: nn.Module | None, seg: Tensor, real: Tensor
    ) -> dict[str, Tensor]:
        raise NotImplementedError


def total(losses: dict[str, Tensor]) -> Tensor:
    """The sum that is backpropagated."""
    return sum(losses.values())  # type: ignore[return-value]
