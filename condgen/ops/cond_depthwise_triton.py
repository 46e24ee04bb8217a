"""Fused Triton kernels for the conditional depthwise convolution (CC-FPSE, Sec. 3.1.1), CUDA only.

Same numbers as the unfold reference (`cond_depthwise.py`), in two kernels: the forward sums the k*k taps of
each output pixel in fp32 registers; one backward kernel writes dL/dW for every tap and gathers dL/dx in
the same pass. Neither materialises unfold(x) or the product (the official code does both), and the
autograd function saves only `x` and `kernels`. Strides are kernel arguments, so NCHW and channels-last
tensors work without copies. CPU tensors are accepted only by Triton's interpreter (`TRITON_INTERPRET=1`),
which the tests use; the kernels are compiled on first use, for whichever mode is active then.
"""

from __future__ import annotations

import functools
import importlib.util

import torch
from torch import Tensor

from condgen.ops.unfold_grads import grads_differentiable

try:
    import triton
    import triton.language as tl
except ImportError:  # CPU-only installs: 'lean' serves every device
    triton = None


def triton_available() -> bool:
    """Triton is installed (the 'auto' implementation then uses it for CUDA tensors)."""
    return triton is not None and importlib.util.find_spec("triton") is not None


def _interpreting() -> bool:
    return triton is not None and bool(triton.knobs.runtime.interpret)


if triton is not None:

    def _forward_kernel(
        x_ptr, w_ptr, out_ptr, C, H, W,
        sxn, sxc, sxh, sxw, swn, swc, swh, sww, son, soc, soh, sow,
        K: tl.constexpr, ACC: tl.constexpr, BLOCK_C: tl.constexpr, BLOCK_P: tl.constexpr,
    ):
        # one program: BLOCK_C channels x BLOCK_P pixels (flat h*W + w) of one sample
        c_blocks = (C + BLOCK_C - 1) // BLOCK_C  # tl.cdiv, tl.zeros: jit functions, which the
        # interpreter cannot call if triton was imported before TRITON_INTERPRET was set
        n = (tl.program_id(0) // c_blocks).to(tl.int64)
        c = ((tl.program_id(0) % c_blocks) * BLOCK_C + tl.arange(0, BLOCK_C)).to(tl.int64)
        p = tl.program_id(1) * BLOCK_P + tl.arange(0, BLOCK_P)  # pixel in the plane: int32 division
        i, j = (p // W).to(tl.int64), (p % W).to(tl.int64)  # int64 offsets: 9*C*H*W can exceed 2^31
        c_ok, p_ok = c < C, p < H * W
        here = c_ok[:, None] & p_ok[None, :]
        acc = tl.full((BLOCK_C, BLOCK_P), 0, dtype=ACC)
        for t in tl.static_range(K * K):
            ii, jj = i + (t // K - K // 2), j + (t % K - K // 2)
            inside = p_ok & (ii >= 0) & (ii < H) & (jj >= 0) & (jj < W)  # outside: zero padding
            xv = tl.load(x_ptr + n * sxn + c[:, None] * sxc + (ii * sxh + jj * sxw)[None, :],
                         mask=c_ok[:, None] & inside[None, :], other=0.0)
            wv = tl.load(w_ptr + n * swn + (c * (K * K) + t)[:, None] * swc + (i * swh + j * sww)[None, :],
                         mask=here, other=0.0)
            acc += xv.to(ACC) * wv.to(ACC)
        tl.store(out_ptr + n * son + c[:, None] * soc + (i * soh + j * sow)[None, :],
                 acc.to(out_ptr.dtype.element_ty), mask=here)

    def _backward_kernel(
        x_ptr, w_ptr, g_ptr, gx_ptr, gw_ptr, C, H, W,
        sxn, sxc, sxh, sxw, swn, swc, swh, sww, sgn, sgc, sgh, sgw,
        sxgn, sxgc, sxgh, sxgw, swgn, swgc, swgh, swgw,
        K: tl.constexpr, NEED_X: tl.constexpr, NEED_W: tl.constexpr, ACC: tl.constexpr,
        BLOCK_C: tl.constexpr, BLOCK_P: tl.constexpr,
    ):
        c_blocks = (C + BLOCK_C - 1) // BLOCK_C  # tl.cdiv, tl.zeros: jit functions, which the
        # interpreter cannot call if triton was imported before TRITON_INTERPRET was set
        n = (tl.program_id(0) // c_blocks).to(tl.int64)
        c = ((tl.program_id(0) % c_blocks) * BLOCK_C + tl.arange(0, BLOCK_C)).to(tl.int64)
        p = tl.program_id(1) * BLOCK_P + tl.arange(0, BLOCK_P)  # pixel in the plane: int32 division
        i, j = (p // W).to(tl.int64), (p % W).to(tl.int64)  # int64 offsets: 9*C*H*W can exceed 2^31
        c_ok, p_ok = c < C, p < H * W
        here = c_ok[:, None] & p_ok[None, :]
        g_here = tl.load(g_ptr + n * sgn + c[:, None] * sgc + (i * sgh + j * sgw)[None, :],
                         mask=here, other=0.0).to(ACC)
        acc = tl.full((BLOCK_C, BLOCK_P), 0, dtype=ACC)
        for t in tl.static_range(K * K):
            dy, dx = t // K - K // 2, t % K - K // 2
            if NEED_W:  # dL/dW_t[i, j] = g[i, j] * x[i + dy, j + dx]
                ii, jj = i + dy, j + dx
                inside = p_ok & (ii >= 0) & (ii < H) & (jj >= 0) & (jj < W)
                xv = tl.load(x_ptr + n * sxn + c[:, None] * sxc + (ii * sxh + jj * sxw)[None, :],
                             mask=c_ok[:, None] & inside[None, :], other=0.0)
                gw = g_here * xv.to(ACC)
                gw_at = gw_ptr + n * swgn + (c * (K * K) + t)[:, None] * swgc + (i * swgh + j * swgw)[None, :]
                tl.store(gw_at, gw.to(gw_ptr.dtype.element_ty), mask=here)
            if NEED_X:  # x[i, j] fed out[i - dy, j - dx] through W_t there: gather those products
                si, sj = i - dy, j - dx
                inside = p_ok & (si >= 0) & (si < H) & (sj >= 0) & (sj < W)
                m = c_ok[:, None] & inside[None, :]
                w_at = w_ptr + n * swn + (c * (K * K) + t)[:, None] * swc + (si * swh + sj * sww)[None, :]
                wv = tl.load(w_at, mask=m, other=0.0)
                gv = tl.load(g_ptr + n * sgn + c[:, None] * sgc + (si * sgh + sj * sgw)[None, :],
                             mask=m, other=0.0)
                acc += wv.to(ACC) * gv.to(ACC)
        if NEED_X:
            tl.store(gx_ptr + n * sxgn + c[:, None] * sxgc + (i * sxgh + j * sxgw)[None, :],
                     acc.to(gx_ptr.dtype.element_ty), mask=here)


@functools.cache
def _kernels(interpret: bool):  # `triton.jit` picks compiled or interpreted at decoration time
    return triton.jit(_forward_kernel), triton.jit(_backward_kernel)


def _acc(x: Tensor):
    """Accumulate in fp32 (fp64 for fp64 inputs, as the gradient checks use)."""
    return tl.float64 if x.dtype == torch.float64 else tl.float32


def _tiles(kernels: Tensor) -> dict[str, int]:
    """Pixels innermost for NCHW (coalesced rows); channels innermost for channels-last."""
    if kernels.stride(1) == 1 and kernels.shape[1] > 1:
        return {"BLOCK_C": 32, "BLOCK_P": 32}
    return {"BLOCK_C": 4, "BLOCK_P": 128}


def _grid(x: Tensor, tiles: dict[str, int]) -> tuple[int, int]:
    n, c, h, w = x.shape
    # samples x channel blocks on axis 0 (no 65535 limit there), pixel blocks on axis 1
    return n * triton.cdiv(c, tiles["BLOCK_C"]), triton.cdiv(h * w, tiles["BLOCK_P"])


class _CondDepthwiseTriton(torch.autograd.Function):
    """Fused forward and backward kernels; saves only x and kernels."""

    @staticmethod
    def forward(ctx, x: Tensor, kernels: Tensor, kernel_size: int) -> Tensor:
        ctx.kernel_size = kernel_size
        ctx.save_for_backward(x, kernels)
        forward_kernel, _ = _kernels(_interpreting())
        out = torch.empty_like(x)
        tiles = _tiles(kernels)
        _, c, h, w = x.shape
        forward_kernel[_grid(x, tiles)](
            x, kernels, out, c, h, w, *x.stride(), *kernels.stride(), *out.stride(),
            K=kernel_size, ACC=_acc(x), **tiles,
        )
        return out

    @staticmethod
    def backward(ctx, grad_out: Tensor):
        x, kernels = ctx.saved_tensors
        k = ctx.kernel_size
        need_x, need_k = ctx.needs_input_grad[:2]
        if torch.is_grad_enabled():  # double backward: differentiable ops, as the lean path does
            return (*grads_differentiable(x, kernels, grad_out, k, need_x, need_k), None)
        if not (need_x or need_k):
            return None, None, None
        _, backward_kernel = _kernels(_interpreting())
        grad_x = torch.empty_like(x) if need_x else x  # unused placeholders keep the signature fixed
        grad_k = torch.empty_like(kernels) if need_k else kernels
        tiles = _tiles(kernels)
        _, c, h, w = x.shape
        backward_kernel[_grid(x, tiles)](
            x, kernels, grad_out, grad_x, grad_k, c, h, w,
            *x.stride(), *kernels.stride(), *grad_out.stride(), *grad_x.stride(), *grad_k.stride(),
            K=k, NEED_X=need_x, NEED_W=need_k, ACC=_acc(x), **tiles,
        )
        return (grad_x if need_x else None), (grad_k if need_k else None), None


def cond_depthwise_conv2d_triton(x: Tensor, kernels: Tensor, kernel_size: int = 3) -> Tensor:
    """The fused kernels; shapes as `cond_depthwise_conv2d` (checked there)."""
    if triton is None:
        raise RuntimeError(
            "cond_depthwise_conv2d impl='triton' needs the `triton` package (pip install triton, CUDA only); "
            "use impl='auto' or 'lean'"
        )
    if not (x.is_cuda and kernels.is_cuda) and not _interpreting():
        raise ValueError(
            f"cond_depthwise_conv2d impl='triton' runs on CUDA tensors, got x on {x.device} and kernels on "
            f"{kernels.device}; use impl='auto' (Triton on CUDA, 'lean' elsewhere) or impl='lean'"
        )
    return _CondDepthwiseTriton.apply(x, kernels, kernel_size)
