"""The objective contract: the networks a run trains, and the updates of one training step with their losses.

An objective declares `networks` (the names `build_gan` must build: 'G', 'D'; 'E' comes with a VAE
generator) and `updates()`: the optimiser updates of one step, in order, each naming the networks it trains
and a function returning that update's loss terms {name: weighted 0-dim tensor}. The loop
(`condgen/train/loop.py`) runs every update the same way: zero_grad, micro-batches, no_sync, autocast,
backward of the sum (`total`), optimiser step; it logs each term under its name. A GAN step is two updates
(G then D); a diffusion model's step is one. Loss functions run on whatever the loop hands them (DDP- or
compile-wrapped modules): call the networks directly and reach their methods through `unwrap` (see
`condgen.networks.discriminator`). Everything an objective needs beyond the networks, `seg` and `real` is its
own gin parameter, so an objective is unit-testable without Accelerate.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from torch import Tensor, nn

Networks = dict[str, nn.Module]  # by checkpoint name: 'G', 'D', 'E'


@dataclass(frozen=True)
class Update:
    """One optimiser update of a training step.

    Attributes:
        name: the optimiser's name ('G' or 'D': its learning rate is `Run.lrs[name]`, logged as `lr_<name>`).
        networks: the networks it trains (their parameters get gradients; absent ones, such as 'E' without a
            VAE, are skipped); every other network is only read.
        losses: (networks, seg, real) -> {term name: weighted 0-dim tensor}.
        thinned: runs only every `train.D_steps_per_G` steps (a GAN's generator update).
    """

    name: str
    networks: tuple[str, ...]
    losses: Callable[[Networks, Tensor, Tensor], dict[str, Tensor]]
    thinned: bool = False


class Objective(nn.Module):
    """Base class of registered objectives (`@register("objective")`). Loss modules are submodules, so
    `objective.to(device)` moves them with it. The default `updates()` is the GAN step: a G (+E) update
    from `generator_losses`, then a D update from `discriminator_losses`.

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

    networks: tuple[str, ...] = ("G", "D")
    batch_summed: tuple[str, ...] = ()
    loss_names: tuple[str, ...] = ()

    def updates(self) -> tuple[Update, ...]:
        def g_losses(n: Networks, seg: Tensor, real: Tensor) -> dict[str, Tensor]:
            return self.generator_losses(n["G"], n["D"], n.get("E"), seg, real)

        def d_losses(n: Networks, seg: Tensor, real: Tensor) -> dict[str, Tensor]:
            return self.discriminator_losses(n["G"], n["D"], n.get("E"), seg, real)

        return Update("G", ("G", "E"), g_losses, thinned=True), Update("D", ("D",), d_losses)

    def sample(self, G: nn.Module, seg: Tensor) -> Tensor:
        """Images for the training sample grids from the (eval-mode) generator; seeded by the caller."""
        return G(seg)

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
