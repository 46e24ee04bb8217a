"""BatchNorm recalibration of an (EMA) generator: re-estimate the running statistics on training batches.

An EMA generator's averaged weights do not match the BN running statistics it carries (condgen's EMA copies
G's buffers; the original OASIS averages them), so OASIS re-estimates them before every evaluation and save:
the EMA generator runs in train mode under `no_grad` on training batches, 51 of them, with BN momentum left at
0.1 (OASIS README / fixture section 7). `recalibrate_batchnorm` is that step for any generator (SPADE,
CC-FPSE, OASIS: every generator whose param-free norms are batch norms); it changes buffers only.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn.utils import parametrize

OASIS_NUM_BATCHES = 51  # the original breaks after its 51st batch (counter > 50)


def _label_map(batch: Any) -> Tensor:
    """`seg` from a batch: a tensor, a (seg, real, ...) tuple/list, or a dict with 'seg'."""
    if isinstance(batch, Tensor):
        return batch
    if isinstance(batch, (tuple, list)):
        return batch[0]
    if isinstance(batch, dict) and "seg" in batch:
        return batch["seg"]
    raise TypeError(f"a batch must be seg, (seg, real) or {{'seg': ...}}, got {type(batch).__name__}")


@torch.no_grad()
def recalibrate_batchnorm(
    G: nn.Module,
    batches: Iterable[Any],
    *,
    num_batches: int = OASIS_NUM_BATCHES,
    reset: bool = False,
    update_spectral_norm: bool = True,
    generate: Callable[[nn.Module, Tensor], Tensor] | None = None,
) -> int:
    """Forward `G` in train mode under no_grad on up to `num_batches` batches, updating BN running stats.

    Args:
        G: the generator (e.g. the EMA copy); its train/eval mode (per module) is restored afterwards.
        batches: label maps `seg`, `(seg, real)` pairs (what the training loop moves to the device) or dicts
            with 'seg'; an endless iterator is fine.
        num_batches: forwards to run (OASIS: 51).
        reset: False (OASIS): the stats keep moving with each BN's own momentum from their current value;
            True: reset them and average the batches' statistics exactly (momentum None), then restore
            every momentum.
        update_spectral_norm: True (OASIS): the train-mode forwards also advance the spectral-norm power
            iterations (u, v), as in the original; False keeps u, v as they are.
        generate: how to call G (default `G(seg)`: fresh noise / latent per batch, e.g. OASIS's 3-D noise).
    Returns:
        the number of batches used.
    """
    if num_batches < 1:
        raise ValueError(f"num_batches must be >= 1, got {num_batches}")
    modes = {m: m.training for m in G.modules()}
    norms = [m for m in G.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    momenta = {m: m.momentum for m in norms}
    if reset:
        for m in norms:
            m.reset_running_stats()
            m.momentum = None
    G.train()
    if not update_spectral_norm:
        for m in G.modules():
            if parametrize.is_parametrized(m):
                for plist in m.parametrizations.values():
                    plist.eval()
    used = 0
    try:
        for batch in batches:
            if used >= num_batches:
                break
            seg = _label_map(batch)
            generate(G, seg) if generate is not None else G(seg)
            used += 1
    finally:
        for m, training in modes.items():
            m.training = training
        for m, momentum in momenta.items():
            m.momentum = momentum
    return used
