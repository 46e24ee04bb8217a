"""Conditional depthwise conv: lean == unfold reference == the definition; gradients, memory, errors."""

import gin
import pytest
import torch

from condgen.ops import cond_depthwise as cdw
from condgen.ops.cond_depthwise import (
    cond_depthwise_conv2d,
    cond_depthwise_conv2d_lean,
    cond_depthwise_conv2d_reference,
)


def _inputs(n, c, h, w, k, dtype=torch.float32, grad=True):
    x = torch.randn(n, c, h, w, dtype=dtype, requires_grad=grad)
    kernels = torch.randn(n, c * k * k, h, w, dtype=dtype, requires_grad=grad)
    return x, kernels


def _by_definition(x, kernels, k):
    """Loop over taps straight from the formula, with explicit zero padding."""
    n, c, h, w = x.shape
    p = k // 2
    x_pad = torch.nn.functional.pad(x, (p, p, p, p))
    out = torch.zeros_like(x)
    for ky in range(k):
        for kx in range(k):
            out += kernels[:, ky * k + kx :: k * k] * x_pad[:, :, ky : ky + h, kx : kx + w]
    return out


@pytest.mark.parametrize("k, h, w", [(1, 5, 7), (3, 5, 7), (3, 8, 3), (5, 6, 4), (7, 4, 9), (5, 1, 2)])
def test_lean_matches_reference_and_definition_float64(k, h, w):
    x, kernels = _inputs(2, 3, h, w, k, torch.float64)
    lean = cond_depthwise_conv2d(x, kernels, k)
    ref = cond_depthwise_conv2d_reference(x, kernels, k)
    torch.testing.assert_close(lean, ref, rtol=0, atol=1e-12)
    torch.testing.assert_close(lean, _by_definition(x, kernels, k), rtol=0, atol=1e-12)
    g = torch.randn_like(lean)
    grads = torch.autograd.grad(lean, (x, kernels), g), torch.autograd.grad(ref, (x, kernels), g)
    for a, b in zip(*grads, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-12)


@pytest.mark.parametrize("k", [1, 3, 5])
def test_lean_matches_reference_float32_to_1e6(k):
    # Network-like magnitudes (xavier 0.02-initialised heads predict small kernels).
    x = torch.randn(2, 8, 12, 10, requires_grad=True)
    kernels = (0.1 * torch.randn(2, 8 * k * k, 12, 10)).requires_grad_()
    lean, ref = cond_depthwise_conv2d(x, kernels, k), cond_depthwise_conv2d_reference(x, kernels, k)
    assert (lean - ref).abs().max() <= 1e-6
    g = torch.randn_like(lean)
    grads = torch.autograd.grad(lean, (x, kernels), g), torch.autograd.grad(ref, (x, kernels), g)
    for a, b in zip(*grads, strict=True):
        assert (a - b).abs().max() <= 1e-6


@pytest.mark.parametrize("k, h, w", [(3, 4, 5), (5, 3, 2), (1, 2, 3)])
def test_gradcheck(k, h, w):
    x, kernels = _inputs(2, 2, h, w, k, torch.float64)
    assert torch.autograd.gradcheck(lambda a, b: cond_depthwise_conv2d_lean(a, b, k), (x, kernels))


@pytest.mark.parametrize("k, h, w", [(3, 3, 4), (5, 2, 3)])
def test_gradgradcheck(k, h, w):
    # create_graph=True switches the backward to differentiable (unfold/fold) ops.
    x, kernels = _inputs(1, 1, h, w, k, torch.float64)
    assert torch.autograd.gradgradcheck(lambda a, b: cond_depthwise_conv2d_lean(a, b, k), (x, kernels))
    out = cond_depthwise_conv2d_lean(x, kernels, k)
    g = torch.randn_like(out)
    plain = torch.autograd.grad(out, (x, kernels), g, retain_graph=True)
    graphed = torch.autograd.grad(out, (x, kernels), g, create_graph=True)
    for a, b in zip(plain, graphed, strict=True):  # both backward paths give the same first-order grads
        torch.testing.assert_close(a, b, rtol=0, atol=1e-12)


def test_gradient_only_for_the_input_that_needs_it():
    x, kernels = _inputs(1, 2, 5, 5, 3, grad=False)
    x.requires_grad_()
    cond_depthwise_conv2d(x, kernels).sum().backward()
    assert x.grad is not None and kernels.grad is None
    # The sum's gradient w.r.t. x[c, i, j] is the sum of the kernel taps that read it.
    expected = cond_depthwise_conv2d_reference(x, kernels).sum()
    (gx,) = torch.autograd.grad(expected, x)
    torch.testing.assert_close(x.grad, gx, rtol=1e-6, atol=1e-6)


def test_non_contiguous_and_channels_last_inputs():
    x, kernels = _inputs(2, 3, 6, 5, 3, torch.float64, grad=False)
    ref = cond_depthwise_conv2d_reference(x, kernels)
    x_cl = x.contiguous(memory_format=torch.channels_last)
    k_nc = kernels.transpose(2, 3).contiguous().transpose(2, 3)  # same values, transposed strides
    torch.testing.assert_close(cond_depthwise_conv2d(x_cl, k_nc), ref, rtol=0, atol=1e-12)


def test_mixed_dtypes_promote():
    x, kernels = _inputs(1, 2, 4, 4, 3, grad=False)
    out = cond_depthwise_conv2d(x.to(torch.bfloat16), kernels)
    assert out.dtype == torch.float32


def _saved_bytes(fn, x, kernels):
    storages = {}

    def pack(t):
        s = t.untyped_storage()
        storages[s.data_ptr()] = s.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        fn(x, kernels).sum().backward()
    return sum(storages.values())


def test_lean_saves_only_x_and_kernels():
    x, kernels = _inputs(2, 16, 16, 16, 3)
    input_bytes = x.nbytes + kernels.nbytes
    lean = _saved_bytes(cond_depthwise_conv2d_lean, x, kernels)
    ref = _saved_bytes(cond_depthwise_conv2d_reference, x, kernels)
    assert lean == input_bytes
    assert ref >= kernels.nbytes + 9 * x.nbytes  # the reference keeps a 9x unfolded copy of x


def test_errors_name_both_shapes():
    x, kernels = _inputs(2, 3, 5, 5, 3, grad=False)
    with pytest.raises(ValueError, match=r"\(2, 26, 5, 5\).*\(2, 3, 5, 5\).*\(2, 27, 5, 5\)"):
        cond_depthwise_conv2d(x, kernels[:, :26])
    with pytest.raises(ValueError, match="kernel_size=5"):
        cond_depthwise_conv2d(x, kernels, 5)
    with pytest.raises(ValueError, match="odd"):
        cond_depthwise_conv2d(x, kernels, 2)
    with pytest.raises(ValueError, match="unknown impl 'cuda'"):
        cond_depthwise_conv2d(x, kernels, impl="cuda")
    with pytest.raises(ValueError, match=r"\(N, C, H, W\)"):
        cond_depthwise_conv2d(x[0], kernels[0])


def test_gin_binding_picks_the_implementation(monkeypatch):
    calls = []

    def spy(x, kernels, kernel_size):
        calls.append(kernel_size)
        return cond_depthwise_conv2d_lean(x, kernels, kernel_size)

    monkeypatch.setitem(cdw.IMPLS, "spy", spy)
    x, kernels = _inputs(1, 2, 4, 4, 3, grad=False)
    cond_depthwise_conv2d(x, kernels)
    assert calls == []
    gin.parse_config("cond_depthwise_conv2d.impl = 'spy'")
    cond_depthwise_conv2d(x, kernels)
    assert calls == [3]
    cond_depthwise_conv2d(x, kernels, impl="lean")  # an explicit argument wins over the binding
    assert calls == [3]
