"""Conditional depthwise convolution: per-sample, per-pixel predicted k x k kernels (CC-FPSE, Sec. 3.1.1).

`out[n,c,h,w] = sum_{ky,kx} W[n, c*k*k + ky*k + kx, h, w] * x_pad[n, c, h+ky-p, w+kx-p]`, zero padding
p = k // 2, stride 1, no bias; the kernel channel order is the official `DepthConv`'s (unfold order).
The official code unfolds x (k*k copies) and multiplies. Implementations here, all with the same numbers:
'lean' (default, any device): shift-and-accumulate in a custom autograd function that saves only `x` and
`kernels` and recomputes the shifts in backward; 'triton' (CUDA): fused forward/backward kernels
(`cond_depthwise_triton.py`); 'auto': 'triton' on CUDA when Triton is installed, else 'lean';
'reference': the official unfold formulation, kept for tests and benchmarks.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from einops import rearrange, reduce
from torch import Tensor

from condgen.ops.unfold_grads import grads_differentiable
from condgen.registry import register

# On CPU the lean path works on blocks of about this many output pixels (whole planes, or bands of image
# rows), so that the output and the shifted copies of x or of the output gradient stay in L2 cache across
# the k*k taps (measured on 2 EPYC cores, see benchmarks/RESULTS.md); each kernel tap is read once.
CPU_BLOCK_ELEMENTS = 1 << 17

# From this image width on, the gradient of x works on 2-D views of the planes (`_grad_x_rows`), below it
# on flat rows of pixels with masked copies.
CPU_ROWS_MIN_WIDTH = 128


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


# ------------------------------------------------------------------------------------------- the lean path
# Planes are flattened to rows of h*w pixels. Tap (dy, dx) then pairs output pixel q with input pixel
# q + off, off = dy*w + dx: one contiguous range per tap, clipped to the image rows that exist (the vertical
# zero padding), except that a horizontal shift wraps around row ends; those wrapped-in columns are zeroed
# in a per-dx copy of x (forward) or, for the gradient of x, in a per-dx copy of the output gradient; on
# wide images the gradient of x uses 2-D views instead (`_grad_x_rows`), and the gradient of the kernels
# always works from a zero-padded copy of x (`_grad_kernels_block`). On CPU the work is cut into
# cache-sized blocks (`_Block`) that worker threads share.
@dataclass(frozen=True)
class _Block:
    """Planes `planes`, output pixels [q0, q1) of each, reading input pixels [a0, a1) (whole image rows)."""

    planes: slice
    q0: int
    q1: int
    a0: int
    a1: int


def _blocks(planes: int, h: int, w: int, p: int, device: torch.device) -> list[_Block]:
    hw = h * w
    if device.type != "cpu":
        return [_Block(slice(0, planes), 0, hw, 0, hw)]
    if hw <= CPU_BLOCK_ELEMENTS:  # several whole planes per block, and at least one block per thread
        step = max(1, min(CPU_BLOCK_ELEMENTS // hw, -(-planes // torch.get_num_threads())))
        return [_Block(slice(r, min(planes, r + step)), 0, hw, 0, hw) for r in range(0, planes, step)]
    rows = max(1, CPU_BLOCK_ELEMENTS // w)  # bands of image rows, with p rows of halo on either side
    return [
        _Block(slice(r, r + 1), i * w, min(h, i + rows) * w, max(0, i - p) * w, min(h, i + rows + p) * w)
        for r in range(planes)
        for i in range(0, h, rows)
    ]


def _offsets(k: int, w: int) -> list[tuple[int, int]]:
    """(dx, flat offset dy*w + dx) of every tap, in the kernel channel order ky*k + kx."""
    p = k // 2
    return [(kx - p, (ky - p) * w + kx - p) for ky in range(k) for kx in range(k)]


def _column_masked(t: Tensor, w: int, p: int, *, inputs: bool) -> dict[int, Tensor]:
    """{dx: t (planes, whole rows) with the columns a dx-shift must not see zeroed}: for inputs (x) the
    columns a shift by dx wraps into; for output gradients the output columns whose input is padding."""
    out = {0: t}
    for dx in range(1, p + 1):
        end = slice(max(0, w - dx), None)  # a tap wider than the image sees only padding
        left, right = (end, slice(None, dx)) if inputs else (slice(None, dx), end)
        for signed, cols in ((-dx, left), (dx, right)):
            copy = t.clone()
            copy.unflatten(1, (-1, w))[..., cols] = 0
            out[signed] = copy
    return out


def _product(a: Tensor, b: Tensor, *, out: Tensor) -> None:
    """out = a * b, in out's precision (torch.mul(out=) would round a 16-bit product before widening)."""
    if out.dtype == a.dtype:
        torch.mul(a, b, out=out)
    else:
        out.copy_(a).mul_(b)


def _forward_block(b: _Block, xr: Tensor, kr: Tensor, out: Tensor, k: int, w: int) -> None:
    (q0, q1, a0, a1), center = (b.q0, b.q1, b.a0, b.a1), (k * k) // 2
    src, kern, o = _column_masked(xr[b.planes, a0:a1], w, k // 2, inputs=True), kr[b.planes], out[b.planes]
    _product(kern[:, center, q0:q1], xr[b.planes, q0:q1], out=o[:, q0:q1])  # every pixel: starts the sum
    for t, (dx, off) in enumerate(_offsets(k, w)):
        lo, hi = max(q0, a0 - off), min(q1, a1 - off)  # outputs whose input q + off is in the block
        if t != center and lo < hi:
            o[:, lo:hi].addcmul_(kern[:, t, lo:hi], src[dx][:, lo + off - a0 : hi + off - a0])


def _backward_block(
    b: _Block, xr: Tensor, kr: Tensor, gr: Tensor, grad_x: Tensor | None, grad_k: Tensor | None, k: int,
    w: int,
) -> None:
    if grad_k is not None:
        _grad_kernels_block(b, xr, gr, grad_k, k, w)
    if grad_x is None:
        return
    if w >= CPU_ROWS_MIN_WIDTH:
        return _grad_x_rows(b, kr, gr, grad_x, k, w)
    # x[r] fed out[r - off] through W_tap there: gather g * W_tap from r - off
    (q0, q1, a0, a1), center = (b.q0, b.q1, b.a0, b.a1), (k * k) // 2
    kern, g = kr[b.planes], gr[b.planes]
    masked, gx = _column_masked(gr[b.planes, a0:a1], w, k // 2, inputs=False), grad_x[b.planes]
    _product(kern[:, center, q0:q1], g[:, q0:q1], out=gx[:, q0:q1])
    for t, (dx, off) in enumerate(_offsets(k, w)):
        lo, hi = max(q0, a0 + off), min(q1, a1 + off)
        if t != center and lo < hi:
            src = masked[dx][:, lo - off - a0 : hi - off - a0]
            gx[:, lo:hi].addcmul_(kern[:, t, lo - off : hi - off], src)


# Wide images (w >= CPU_ROWS_MIN_WIDTH) use 2-D views of the block instead, (planes, rows, w): each tap is
# one op on the rectangle of pixels whose shifted partner is inside the image, so nothing wraps and no
# masked copies are needed. Its inner loops run over w - |dx| contiguous pixels, which costs more than the
# flat ranges' one long run for narrow images; measured on 2 EPYC cores: 2-D is faster from w = 128 on,
# about even at 64, slower below.
def _rows(b: _Block, w: int) -> tuple[int, int, int, int]:
    return b.q0 // w, b.q1 // w, b.a0 // w, b.a1 // w


def _grad_x_rows(b: _Block, kr: Tensor, gr: Tensor, grad_x: Tensor, k: int, w: int) -> None:
    (y0, y1, a0, a1), p, center = _rows(b, w), k // 2, (k * k) // 2
    g, gx = gr[b.planes].unflatten(1, (-1, w)), grad_x[b.planes].unflatten(1, (-1, w))
    kern = kr[b.planes].unflatten(2, (-1, w))
    _product(kern[:, center, y0:y1], g[:, y0:y1], out=gx[:, y0:y1])
    for t in range(k * k):  # input pixel r fed output r - (dy, dx) through that output's tap t
        dy, dx = t // k - p, t % k - p
        lo, hi = max(y0, a0 + dy), min(y1, a1 + dy)
        c0, c1 = max(0, dx), min(w, w + dx)
        if t != center and lo < hi and c0 < c1:
            rows, cols = slice(lo - dy, hi - dy), slice(c0 - dx, c1 - dx)
            gx[:, lo:hi, c0:c1].addcmul_(kern[:, t, rows, cols], g[:, rows, cols])


def _grad_kernels_block(b: _Block, xr: Tensor, gr: Tensor, grad_k: Tensor, k: int, w: int) -> None:
    """dL/dW_tap[y, x] = g[y, x] * x_pad[y + dy, x + dx] for all k*k taps of the block in one product.

    The block's rows of x, with their halo rows, go into a zero-padded copy (p zero pixels round each
    side); one strided view of it holds every tap's shifted image, so a single broadcast multiply writes
    the block's whole slab of the kernels' gradient (k*k times the block: the dominant memory traffic),
    with nothing to mask. Per tap, with masked copies of x, this was ~20% slower (2 EPYC cores).
    """
    (y0, y1, a0, a1), p = _rows(b, w), k // 2
    n, rows, wp = b.planes.stop - b.planes.start, y1 - y0, w + 2 * p
    xp = torch.empty(n, rows + 2 * p, wp, dtype=xr.dtype, device=xr.device)  # row i is image row y0 - p + i
    top, bottom = a0 - y0 + p, a1 - y0 + p  # rows of xp that hold image rows; above and below: padding
    xp[:, :top], xp[:, bottom:], xp[:, top:bottom, :p], xp[:, top:bottom, p + w :] = 0, 0, 0, 0
    xp[:, top:bottom, p : p + w] = xr[b.planes, a0 * w : a1 * w].unflatten(1, (-1, w))
    shifted = xp.as_strided((n, k, k, rows, w), (xp.stride(0), wp, 1, wp, 1))  # [.., ky, kx, y, x]
    g = gr[b.planes, b.q0 : b.q1].unflatten(1, (1, 1, -1, w))
    torch.mul(g, shifted, out=grad_k[b.planes].unflatten(1, (k, k)).unflatten(3, (-1, w))[..., y0:y1, :])


_POOL: tuple[int, int, ThreadPoolExecutor] | None = None  # (pid that made it, workers, pool)


def _run(fn: Callable[[_Block], None], blocks: list[_Block]) -> None:
    """Run `fn` on every block: inline, or split over `torch.get_num_threads()` worker threads.

    The workers run their ops single-threaded: many small ops that each fork and join an OpenMP team stall
    whenever another process holds a core (measured up to 30x slower on a loaded 2-core machine), while
    whole blocks per thread only wait for each other once per call.
    """
    threads = torch.get_num_threads()
    if threads == 1 or len(blocks) == 1:
        for b in blocks:
            fn(b)
        return
    global _POOL
    if _POOL is None or _POOL[0] != os.getpid() or _POOL[1] < threads:  # none yet, a forked child, too few
        _POOL = (os.getpid(), threads, ThreadPoolExecutor(threads, thread_name_prefix="cond_depthwise"))
    share = -(-len(blocks) // threads)
    jobs = [_POOL[2].submit(_run_part, fn, blocks[i : i + share]) for i in range(0, len(blocks), share)]
    try:
        wait(jobs)
        for job in jobs:
            job.result()  # re-raise a worker's error
    finally:
        torch.set_num_threads(threads)  # the workers' setting can be process-wide: restore the caller's


def _run_part(fn: Callable[[_Block], None], blocks: list[_Block]) -> None:
    torch.set_num_threads(1)
    with torch.no_grad():  # grad mode is per thread; the blocks write into tensors with out=
        for b in blocks:
            fn(b)


def _as_rows(x: Tensor, kernels: Tensor, k: int) -> tuple[Tensor, Tensor]:
    n, c, h, w = x.shape
    return x.contiguous().view(n * c, h * w), kernels.contiguous().view(n * c, k * k, h * w)


def _lean_forward(x: Tensor, kernels: Tensor, k: int) -> Tensor:
    n, c, h, w = x.shape
    xr, kr = _as_rows(x, kernels, k)
    out = torch.empty_like(xr, dtype=_accumulator(x.dtype))
    _run(lambda b: _forward_block(b, xr, kr, out, k, w), _blocks(n * c, h, w, k // 2, x.device))
    return _like(out.view(n, c, h, w).to(x.dtype), x)


def _lean_backward(
    x: Tensor, kernels: Tensor, g: Tensor, k: int, need_x: bool, need_k: bool
) -> tuple[Tensor | None, Tensor | None]:
    n, c, h, w = x.shape
    xr, kr = _as_rows(x, kernels, k)
    gr = g.contiguous().view(n * c, h * w)
    grad_x = torch.empty_like(xr, dtype=_accumulator(x.dtype)) if need_x else None
    grad_k = torch.empty_like(kr) if need_k else None  # one product per element: no accumulation
    blocks = _blocks(n * c, h, w, k // 2, x.device)
    _run(lambda b: _backward_block(b, xr, kr, gr, grad_x, grad_k, k, w), blocks)
    if grad_x is not None:
        grad_x = _like(grad_x.view(n, c, h, w).to(x.dtype), x)
    if grad_k is not None:
        grad_k = _like(grad_k.view(n, c * k * k, h, w), kernels)
    return grad_x, grad_k


def _accumulator(dtype: torch.dtype) -> torch.dtype:
    """Sums over the k*k taps in fp32 for 16-bit inputs (as convolutions do), in the input dtype otherwise."""
    return torch.float32 if dtype in (torch.bfloat16, torch.float16) else dtype


def _like(t: Tensor, ref: Tensor) -> Tensor:
    """`t` (contiguous) in the memory format of `ref`, so channels-last networks stay channels-last."""
    if not ref.is_contiguous() and ref.is_contiguous(memory_format=torch.channels_last):
        return t.contiguous(memory_format=torch.channels_last)
    return t


class _CondDepthwiseLean(torch.autograd.Function):
    """Shift-and-accumulate forward and backward; saves only x and kernels."""

    @staticmethod
    def forward(ctx, x: Tensor, kernels: Tensor, kernel_size: int) -> Tensor:
        ctx.kernel_size = kernel_size
        ctx.save_for_backward(x, kernels)
        return _lean_forward(x, kernels, kernel_size)

    @staticmethod
    def backward(ctx, grad_out: Tensor):
        x, kernels = ctx.saved_tensors
        need_x, need_k = ctx.needs_input_grad[:2]
        if torch.is_grad_enabled():
            # create_graph=True (double backward): build the gradients from differentiable ops instead.
            return (*grads_differentiable(x, kernels, grad_out, ctx.kernel_size, need_x, need_k), None)
        return (*_lean_backward(x, kernels, grad_out, ctx.kernel_size, need_x, need_k), None)


# torch.compile runs the lean and fused paths as they are (one graph break each): they are kernels already.
@torch.compiler.disable
def cond_depthwise_conv2d_lean(x: Tensor, kernels: Tensor, kernel_size: int = 3) -> Tensor:
    """Shift-and-accumulate implementation (custom autograd); memory ~ x + kernels, no k*k copies of x."""
    _check(x, kernels, kernel_size)
    return _CondDepthwiseLean.apply(x, kernels, kernel_size)


@torch.compiler.disable
def cond_depthwise_conv2d_triton(x: Tensor, kernels: Tensor, kernel_size: int = 3) -> Tensor:
    """Fused Triton kernels (CUDA tensors; CPU tensors only under `TRITON_INTERPRET=1`)."""
    from condgen.ops.cond_depthwise_triton import cond_depthwise_conv2d_triton as fused

    _check(x, kernels, kernel_size)
    return fused(x, kernels, kernel_size)


def cond_depthwise_conv2d_auto(x: Tensor, kernels: Tensor, kernel_size: int = 3) -> Tensor:
    """'triton' for CUDA tensors when Triton is installed, 'lean' otherwise."""
    from condgen.ops.cond_depthwise_triton import triton_available

    fn = cond_depthwise_conv2d_triton if x.is_cuda and triton_available() else cond_depthwise_conv2d_lean
    return fn(x, kernels, kernel_size)


# Implementations by name (gin: `cond_depthwise_conv2d.impl = 'triton'`).
IMPLS: dict[str, Callable[[Tensor, Tensor, int], Tensor]] = {
    "lean": cond_depthwise_conv2d_lean,
    "triton": cond_depthwise_conv2d_triton,
    "auto": cond_depthwise_conv2d_auto,
    "reference": cond_depthwise_conv2d_reference,
}


@register("op")
def cond_depthwise_conv2d(x: Tensor, kernels: Tensor, kernel_size: int = 3, *, impl: str = "lean") -> Tensor:
    """Apply per-pixel predicted depthwise kernels (official `DepthConv`, without its unused BN).

    Args:
        x: (N, C, H, W) features.
        kernels: (N, C*k*k, H, W), channel index c*k*k + ky*k + kx (the official layout).
        kernel_size: k, any positive odd int (official 3).
        impl: 'lean' (default) | 'triton' (CUDA) | 'auto' | 'reference'; gin:
            `cond_depthwise_conv2d.impl = 'auto'`. See docs/performance.md.
    Returns:
        (N, C, H, W). Under autocast both inputs are cast to the autocast dtype (sums over taps in fp32);
        otherwise mixed dtypes are promoted to the wider one.
    """
    if impl not in IMPLS:
        raise ValueError(f"cond_depthwise_conv2d: unknown impl {impl!r}; choose one of {', '.join(IMPLS)}")
    if torch.is_autocast_enabled(x.device.type):
        # as a convolution under autocast: both in the autocast dtype (the kernels are 9x the features, so
        # promoting them to fp32 instead would double the op's memory and traffic)
        dtype = torch.get_autocast_dtype(x.device.type)
    else:
        dtype = torch.promote_types(x.dtype, kernels.dtype)
    x, kernels = x.to(dtype), kernels.to(dtype)
    return IMPLS[impl](x, kernels, kernel_size)
