"""Reference gradients of the conditional depthwise convolution, built from unfold / fold.

Out of place, so autograd can differentiate through them (double backward, gradcheck); shared by the lean
and the Triton implementation.
"""

from __future__ import annotations

import torch.nn.functional as F
from einops import rearrange
from torch import Tensor


def grads_differentiable(
    x: Tensor, kernels: Tensor, grad_out: Tensor, k: int, need_x: bool, need_k: bool
) -> tuple[Tensor | None, Tensor | None]:
    """Out-of-place gradients (unfold/fold) so that autograd can differentiate through them."""
    h, w = x.shape[-2:]
    grad_x = grad_k = None
    if need_x:
        kern = rearrange(kernels, "n (c k) h w -> n c k h w", k=k * k)
        cols = rearrange(grad_out.unsqueeze(2) * kern, "n c k h w -> n (c k) (h w)")
        grad_x = F.fold(cols, (h, w), k, padding=k // 2)
    if need_k:
        patches = rearrange(F.unfold(x, k, padding=k // 2), "n (c k) (h w) -> n c k h w", k=k * k, h=h)
        grad_k = rearrange(grad_out.unsqueeze(2) * patches, "n c k h w -> n (c k) h w")
    return grad_x, grad_k
