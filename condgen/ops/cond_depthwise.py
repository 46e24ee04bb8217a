"""Conditional depthwise convolution: per-sample, per-pixel predicted k x k kernels (CC-FPSE, Sec. 3.1.1).

`out[n,c,h,w] = sum_{ky,kx} W[n, c*k*k + ky*k + kx, h, w] * x_pad[n, c, h+ky-p, w+kx-p]`, zero padding
p = k // 2, stride 1, no bias; the kernel channel order is the official `DepthConv`'s (unfold order).
The official code unfolds x (k*k copies) and multiplies; the default "lean" path here gives the same
numbers by shift-and-accumulate over the k*k taps, saving only `x` and `kernels` for backward, so neither
`unfold(x)` nor the product is ever materialised. "reference" is the unfold formulation, kept for tests.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from einops import rearrange, reduce
from torch import Tensor

from condgen.registry import register


def _check(x: Tensor, kernels: Tensor, kernel_size: int) -> None:
    if kernel_size < 1 or kernel_size % 2 != 1:
        raise ValueError(f"cond_depthwise_conv2d: kernel_size must be a positive odd int, got {kernel_size}")
    if x.dim() != 4:
        raise ValueError(f"cond_depthwise_conv2d: x must be (N, C, H, W), got shape {tuple(x.shape)}")
    n, c, h, w = x.shape
    expected = (n, c * kernel_size**2, h, w)
    if tuple(kernels.shape) != expected:
        raise ValueError(
            f"cond_depthwise_conv2d: kernels have shape {tuple(kernels.shape)} but x has shape "
            f"{tuple(x.shape)}, so kernels must be {expected} (N, C*k*k, H, W) for "
            f"kernel_size={kernel_size}; check the kernel-predicting conv's out channels and the "
            "condition map's size"
        )


def cond_depthwise_conv2d_reference(x: Tensor, kernels: Tensor, kernel_size: int = 3) -> Tensor:
    """The unfold formulation (official `DepthConv`): materialises k*k copies of x. Tests only."""
    _check(x, kernels, kernel_size)
    k2, (h, w) = kernel_size**2, x.shape[-2:]
    patches = F.unfold(x, kernel_size, padding=kernel_size // 2)  # (n, c*k*k, h*w), index c*k*k + tap
    patches = rearrange(patches, "n (c k) (h w) -> n c k h w", k=k2, h=h, w=w)
    kernels = rearrange(kernels, "n (c k) h w -> n c k h w", k=k2)
    return reduce(kernels * patches, "n c k h w -> n c h w", "sum")


def _taps(kernel_size: int, h: int, w: int):
    """Per tap: (tap index, output-window slices, input-window slices) of the valid (unpadded) region.

    Tap (ky, kx) reads x at offset (dy, dx) = (ky - p, kx - p): out[i, j] += W_tap[i, j] * x[i + dy, j + dx]
    wherever the input pixel exists; outside it the zero padding contributes nothing.
    """
    p = kernel_size // 2
    for ky in range(kernel_size):
        for kx in range(kernel_size):
            dy, dx = ky - p, kx - p
            if abs(dy) >= h or abs(dx) >= w:
                continue  # the tap sees only padding
            out_win = (slice(max(0, -dy), h - max(0, dy)), slice(max(0, -dx), w - max(0, dx)))
            in_win = (slice(max(0, dy), h - max(0, -dy)), slice(max(0, dx), w - max(0, -dx)))
            yield ky * kernel_size + kx, out_win, in_win


class _CondDepthwiseLean(torch.autograd.Function):
    """Shift-and-accumulate forward and backward; saves only x and kernels."""

    @staticmethod
    def forward(ctx, x: Tensor, kernels: Tensor, kernel_size: int) -> Tensor:
        ctx.kernel_size = kernel_size
        ctx.save_for_backward(x, kernels)
        h, w = x.shape[-2:]
        kern = rearrange(kernels, "n (c k) h w -> n c k h w", k=kernel_size**2)
        center = kernel_size**2 // 2
        out = kern[:, :, center] * x  # the centre tap covers every pixel: it initialises the sum
        for t, (oy, ox), (iy, ix) in _taps(kernel_size, h, w):
            if t != center:
                out[..., oy, ox].addcmul_(kern[:, :, t, oy, ox], x[..., iy, ix])
        return out

    @staticmethod
    def backward(ctx, grad_out: Tensor):
        x, kernels = ctx.saved_tensors
        k = ctx.kernel_size
        need_x, need_k = ctx.needs_input_grad[:2]
        if torch.is_grad_enabled():
            # create_graph=True (double backward): build the gradients from differentiable ops instead.
            return (*_grads_differentiable(x, kernels, grad_out, k, need_x, need_k), None)
        h, w = x.shape[-2:]
        kern = rearrange(kernels, "n (c k) h w -> n c k h w", k=k * k)
        grad_x = torch.zeros_like(x) if need_x else None
        grad_k = torch.zeros_like(kern) if need_k else None  # taps that hit padding keep a zero gradient
        for t, (oy, ox), (iy, ix) in _taps(k, h, w):
            g = grad_out[..., oy, ox]
            if need_x:  # x[i + dy] fed out[i] through W_tap[i]
                grad_x[..., iy, ix].addcmul_(g, kern[:, :, t, oy, ox])
            if need_k:
                torch.mul(g, x[..., iy, ix], out=grad_k[:, :, t, oy, ox])
        if grad_k is not None:
            grad_k = rearrange(grad_k, "n c k h w -> n (c k) h w")
        return grad_x, grad_k, None


def _grads_differentiable(
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


def cond_depthwise_conv2d_lean(x: Tensor, kernels: Tensor, kernel_size: int = 3) -> Tensor:
    """Shift-and-accumulate implementation (custom autograd); memory ~ x + kernels, no k*k copies of x."""
    _check(x, kernels, kernel_size)
    return _CondDepthwiseLean.apply(x, kernels, kernel_size)


# Implementations by name; a fused kernel (e.g. Triton) joins by adding an entry here.
IMPLS: dict[str, Callable[[Tensor, Tensor, int], Tensor]] = {
    "lean": cond_depthwise_conv2d_lean,
    "reference": cond_depthwise_conv2d_reference,
}


@register("op")
def cond_depthwise_conv2d(x: Tensor, kernels: Tensor, kernel_size: int = 3, *, impl: str = "lean") -> Tensor:
    """Apply per-pixel predicted depthwise kernels (official `DepthConv`, without its unused BN).

    Args:
        x: (N, C, H, W) features.
        kernels: (N, C*k*k, H, W), channel index c*k*k + ky*k + kx (the official layout).
        kernel_size: k, any positive odd int (official 3).
        impl: 'lean' (default) | 'reference'; gin: `cond_depthwise_conv2d.impl = 'reference'`.
    Returns:
        (N, C, H, W). Mixed dtypes (e.g. under autocast) are promoted to the wider one.
    """
    if impl not in IMPLS:
        raise ValueError(f"cond_depthwise_conv2d: unknown impl {impl!r}; choose one of {', '.join(IMPLS)}")
    if x.dtype != kernels.dtype:
        dtype = torch.promote_types(x.dtype, kernels.dtype)
        x, kernels = x.to(dtype), kernels.to(dtype)
    return IMPLS[impl](x, kernels, kernel_size)
