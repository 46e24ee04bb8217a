"""Training schedules as pure functions of the counters (SPADE Sec. 4 "Implementation details").

Resuming needs nothing but the step: the learning rate, the epoch and the position inside the epoch are all
computed from it. Official differences: the official trainer subtracts `lr / niter_decay` from a running value
at the end of every epoch; `lr_at` is the same sequence written in closed form.
"""

from __future__ import annotations

from dataclasses import dataclass


def optimizer_settings(
    lr: float, *, ttur: bool = True, betas: tuple[float, float] | None = None
) -> tuple[float, float, tuple[float, float]]:
    """(lr_G, lr_D, betas) for a base rate, as the official options set them.

    TTUR (default): G gets lr / 2 and D 2 lr, Adam betas (0, 0.9) (the paper says 0.999; the code
    uses 0.9, SPADE issue #50). `ttur=False` (official `--no_TTUR`): both lr, betas (0.5, 0.999).
    An explicit `betas` overrides either default.
    """
    if lr <= 0:
        raise ValueError(f"learning rate must be positive, got lr={lr}")
    if betas is None:
        betas = (0.0, 0.9) if ttur else (0.5, 0.999)
    if len(betas) != 2 or not all(0 <= b < 1 for b in betas):
        raise ValueError(f"Adam betas must be two numbers in [0, 1), got {betas}")
    betas = (float(betas[0]), float(betas[1]))  # Adam rejects an int 0 next to a float
    return (lr / 2, lr * 2, betas) if ttur else (lr, lr, betas)


def lr_factor(epoch: int, niter: int, niter_decay: int) -> float:
    """Multiplier of the base rate during 0-based `epoch`: 1 for `niter` epochs, then linear towards 0.

    The last decay epoch (`niter + niter_decay - 1`) runs at `1 / niter_decay`, as officially (the rate
    reaches 0 only after training ends). Epochs past the schedule stay at that last value.
    """
    if niter_decay <= 0 or epoch < niter:
        return 1.0
    return max(1.0 - (epoch - niter) / niter_decay, 1.0 / niter_decay)


@dataclass(frozen=True)
class Progress:
    """Where a run stands, derived from the optimiser-step counter alone.

    A step is one G update and one D update; with gradient accumulation each of them consumes
    `grad_accum` micro-batches. Micro-batches run on without a break across epochs, so `epoch` is that of
    the step's first micro-batch. `batches_per_epoch` counts global micro-batches (all processes together).
    """

    step: int
    grad_accum: int
    batches_per_epoch: int

    @property
    def micro_batch(self) -> int:
        """Global index of this step's first micro-batch since the start of training."""
        return self.step * self.grad_accum

    @property
    def epoch(self) -> int:
        return self.micro_batch // self.batches_per_epoch

    @property
    def batch_in_epoch(self) -> int:
        return self.micro_batch % self.batches_per_epoch


def total_steps(
    *, niter: int, niter_decay: int, batches_per_epoch: int, grad_accum: int, max_steps: int | None
) -> int:
    """Optimiser steps in the run: `max_steps` when given, else all `niter + niter_decay` epochs."""
    if max_steps is not None:
        if max_steps < 1:
            raise ValueError(f"max_steps must be >= 1, got {max_steps}")
        return max_steps
    epochs = niter + niter_decay
    if epochs < 1:
        raise ValueError(f"niter + niter_decay must be >= 1 epoch, got {niter} + {niter_decay}")
    return max(1, epochs * batches_per_epoch // grad_accum)


def is_due(step: int, every: int | None, last_step: int, at: tuple[int, ...] = ()) -> bool:
    """True after `step` (1-based count of finished steps) when `every` divides it, when it is one of the
    extra steps `at` (early sample grids: something to look at long before the first `every`), and at the
    last step (unless `every` is off and `at` names other steps only)."""
    if step in at:
        return True
    return bool(every) and (step % every == 0 or step == last_step)
