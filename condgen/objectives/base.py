"""The objective contract: the loss terms of one G step and one D step, on plain modules.

`generator_losses` and `discriminator_losses` return {name: weighted 0-dim tensor}; the loop backpropagates
their sum (`total`) and logs each term under its name. They run on whatever the loop hands them (DDP- or
compile-wrapped modules): call the networks directly and reach their methods through `unwrap` (see
`condgen.networks.discriminator`). Everything an objective needs beyond (G, D, E, seg, real) is its own gin
parameter, so an objective is unit-testable without Accelerate.
"""

from __future__ import annotations

from collections.abc import Iterable

from torch import Tensor, nn


class Objective(nn.Module):
    """Base class of registered objectives (`@register("objective")`). Loss modules are submodules, so
    `objective.to(device)` moves them with it.

    `discriminator_losses` is called with G (and E) in train mode; it must generate the fake under
    `torch.no_grad()` and detach it (D's update must not reach G).

    `batch_summed` names the terms that are sums over the batch (the VAE's KL) rather than means: with
    `train.grad_accum = K` the loop averages every other term over the K micro-batches and sums these, so
    that an update weighs each term as one K times larger batch would.

    `loss_names` declares every term the objective may return, G's then D's, in the order reports show
    them; the loop refuses a term it does not declare, so the declaration cannot fall behind the code.
    Empty (a user's objective that declares nothing) means undeclared: reports then show whatever terms
    `metrics.jsonl` holds.
    """

    batch_summed: tuple[str, ...] = ()
    loss_names: tuple[str, ...] = ()

    def generator_losses(
        self, G: nn.Module, D: nn.Module, E: nn.Module | None, seg: Tensor, real: Tensor
    ) -> dict[str, Tensor]:
        raise NotImplementedError

    def discriminator_losses(
        self, G: nn.Module, D: nn.Module, E: nn.Module | None, seg: Tensor, real: Tensor
    ) -> dict[str, Tensor]:
        raise NotImplementedError


def check_declared(objective: Objective, names: Iterable[str]) -> None:
    """Raise if `objective` returned a loss term its `loss_names` does not declare (when it declares any)."""
    declared = tuple(getattr(objective, "loss_names", ()))
    extra = sorted(set(names) - set(declared)) if declared else []
    if extra:
        raise ValueError(
            f"{type(objective).__name__} returned the loss terms {extra}, which its `loss_names` "
            f"{declared} does not declare; add them to `{type(objective).__name__}.loss_names`"
        )


def total(losses: dict[str, Tensor]) -> Tensor:
    """The sum that is backpropagated."""
    return sum(losses.values())  # type: ignore[return-value]
