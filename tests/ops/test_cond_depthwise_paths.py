"""The lean path's CPU variants, each against the unfold reference: the kernels' gradient from a padded copy
of x, the gradient of x on 2-D views (wide images) or flat rows (narrow ones), in whole-plane blocks, row
bands with halo rows and on worker threads, in float64, float32 and bfloat16."""

import pytest
import torch

from condgen.ops import cond_depthwise as cdw
from condgen.ops.cond_depthwise import cond_depthwise_conv2d, cond_depthwise_conv2d_reference


@pytest.fixture(autouse=True)
def _restore_threads():
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def _compare(x, kernels, k, atol):
    x, kernels = x.requires_grad_(), kernels.requires_grad_()
    out = cond_depthwise_conv2d(x, kernels, k)
    ref = cond_depthwise_conv2d_reference(x, kernels, k)
    g = torch.randn_like(ref)
    got = torch.autograd.grad(out, (x, kernels), g)
    want = torch.autograd.grad(ref, (x, kernels), g)
    assert out.dtype == ref.dtype and (out - ref).abs().max() <= atol
    for a, b in zip(got, want, strict=True):
        assert a.dtype == b.dtype and (a - b).abs().max() <= atol


def _case(n, c, h, w, k, dtype=torch.float64):
    return torch.randn(n, c, h, w, dtype=dtype), torch.randn(n, c * k * k, h, w, dtype=dtype)


@pytest.mark.parametrize("rows_min_width", [1, 10**6])  # 2-D views for the gradient of x, or flat rows
@pytest.mark.parametrize("block", [40, 100, 1 << 17])  # row bands, a few planes per block, one block
@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize(
    "n, c, h, w, k", [(2, 3, 10, 9, 3), (1, 2, 9, 11, 5), (3, 2, 6, 4, 1), (2, 1, 2, 3, 7), (1, 2, 12, 5, 3)]
)
def test_every_variant_matches_reference_float64(monkeypatch, rows_min_width, block, threads, n, c, h, w, k):
    monkeypatch.setattr(cdw, "CPU_ROWS_MIN_WIDTH", rows_min_width)
    monkeypatch.setattr(cdw, "CPU_BLOCK_ELEMENTS", block)
    torch.set_num_threads(threads)
    _compare(*_case(n, c, h, w, k), k, atol=1e-12)


@pytest.mark.parametrize("block", [1 << 12, 1 << 17])  # bands of 32 rows, whole planes
def test_wide_image_float32_within_1e5(monkeypatch, block):
    monkeypatch.setattr(cdw, "CPU_BLOCK_ELEMENTS", block)
    x, kernels = _case(1, 4, 64, 160, 3, torch.float32)  # w >= CPU_ROWS_MIN_WIDTH with the defaults
    _compare(x, 0.1 * kernels, 3, atol=1e-5)


@pytest.mark.parametrize("rows_min_width", [1, 10**6])
def test_bfloat16_in_row_bands(monkeypatch, rows_min_width):
    monkeypatch.setattr(cdw, "CPU_ROWS_MIN_WIDTH", rows_min_width)
    monkeypatch.setattr(cdw, "CPU_BLOCK_ELEMENTS", 60)
    x, kernels = _case(1, 3, 12, 10, 3, torch.float32)
    kernels = 0.1 * kernels
    x16, k16 = x.bfloat16().requires_grad_(), kernels.bfloat16().requires_grad_()
    out = cond_depthwise_conv2d(x16, k16)
    ref = cond_depthwise_conv2d_reference(x16.double(), k16.double())  # exact in float64
    assert out.dtype == torch.bfloat16
    assert ((out.double() - ref).abs() <= 2**-8 * ref.abs() + 1e-6).all()  # one rounding of an fp32 sum
    g = torch.randn_like(out)
    got = torch.autograd.grad(out, (x16, k16), g)
    x64, k64 = x16.double().requires_grad_(), k16.double().requires_grad_()
    want = torch.autograd.grad(cond_depthwise_conv2d_reference(x64, k64), (x64, k64), g.double())
    for a, b in zip(got, want, strict=True):
        assert a.dtype == torch.bfloat16
        torch.testing.assert_close(a.double(), b, rtol=2e-2, atol=2e-2)
