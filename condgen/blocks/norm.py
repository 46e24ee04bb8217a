"""Parameter-free normalisations and spectral norm, shared by every block.

The official code spells the param-free norm as part of a string (`spadesyncbatch3x3`); here it is a
name resolved by `get_param_free_norm`. `syncbatch` is a plain BatchNorm2d that the trainer converts to
`nn.SyncBatchNorm` only on CUDA with more than one process (SyncBatchNorm has no CPU kernel).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils import parametrize
from torch.nn.utils.parametrizations import _SpectralNorm as _SpectralNormParametrization

from condgen.utils import LayerType


class SyncableBatchNorm2d(nn.BatchNorm2d):
    """BatchNorm2d marked for conversion to SyncBatchNorm by the trainer (CUDA, > 1 process only)."""


_PARAM_FREE: dict[str, Callable[[int], nn.Module]] = {
    "instance": partial(nn.InstanceNorm2d, affine=False),
    "batch": partial(nn.BatchNorm2d, affine=False),
    "syncbatch": partial(SyncableBatchNorm2d, affine=False),
}


def get_param_free_norm(kind: LayerType) -> Callable[[int], nn.Module]:
    """Resolve 'instance' | 'batch' | 'syncbatch' (or a class/callable) to a `(channels) -> Module`."""
    if isinstance(kind, str):
        if kind not in _PARAM_FREE:
            raise ValueError(
                f"unknown param-free norm {kind!r}; choose one of {', '.join(sorted(_PARAM_FREE))}"
            )
        return _PARAM_FREE[kind]
    return kind


def batch_norm(num_features: int, *, affine: bool = True) -> nn.BatchNorm2d:
    """BatchNorm that becomes SyncBatchNorm under multi-GPU training (official CC-FPSE `--mpdist`)."""
    return SyncableBatchNorm2d(num_features, affine=affine)


class _OfficialOrderSpectralNorm(_SpectralNormParametrization):
    """Torch's spectral-norm parametrization with the power step in the hook API's order.

    The official code uses `torch.nn.utils.spectral_norm` (hook API), whose step is `v <- W^T u, u <- W v`;
    the parametrization API steps `u <- W v, v <- W^T u`. From the same stored (u, v) the two give different
    sigmas, so training-mode outputs only match the official ones (and official checkpoints only continue
    training identically) with this order. Eval mode (no step) is the same either way.
    """

    @torch.no_grad()
    def _power_method(self, weight_mat: Tensor, n_power_iterations: int) -> None:
        if weight_mat.is_meta:  # shapes only (parameter counting): skip the slow meta-device arithmetic
            return
        for _ in range(n_power_iterations):  # in place: see torch's note on DataParallel replicas
            self._v = F.normalize(torch.mv(weight_mat.H, self._u), dim=0, eps=self.eps, out=self._v)
            self._u = F.normalize(torch.mv(weight_mat, self._v), dim=0, eps=self.eps, out=self._u)


def spectral_norm(module: nn.Module, enabled: bool = True) -> nn.Module:
    """Wrap `module.weight` in spectral norm (1 power iteration per training forward, eps 1e-12).

    Uses the parametrization API (keys `parametrizations.weight.original/.0._u/.0._v`; official
    checkpoints' hook-API `weight_orig/_u/_v` are renamed by `condgen.convert`), stepping u and v in the
    official order (`_OfficialOrderSpectralNorm`).
    """
    if not enabled:
        return module
    # dim as torch's spectral_norm: the output-channel axis (1 for transposed convs).
    dim = 1 if isinstance(module, nn.modules.conv._ConvTransposeNd) else 0
    parametrize.register_parametrization(
        module, "weight", _OfficialOrderSpectralNorm(module.weight, dim=dim, eps=1e-12)
    )
    return module
