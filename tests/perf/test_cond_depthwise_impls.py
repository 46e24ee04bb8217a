"""Every conditional depthwise implementation against the unfold reference: values, gradients, memory, layout.

'lean' runs here directly, in cache-sized row blocks (the block size is shrunk so that blocks split samples,
channels and the last partial block); 'triton' runs on CPU through Triton's interpreter, which executes the
same kernel source as the GPU (not its speed). The memory targets of the performance issue are asserted at
a size where per-call constants do not matter.
"""

import pytest
import torch

from benchmarks.memory import MemoryMeter, saved_tensor_bytes
from condgen.ops import cond_depthwise as cdw
from condgen.ops import cond_depthwise_triton as cdt
from condgen.ops.cond_depthwise import cond_depthwise_conv2d, cond_depthwise_conv2d_reference

triton_missing = pytest.mark.skipif(not cdt.triton_available(), reason="triton is not installed")


def _case(n, c, h, w, k, dtype=torch.float32, channels_last=False):
    x = torch.randn(n, c, h, w, dtype=dtype)
    kernels = 0.1 * torch.randn(n, c * k * k, h, w, dtype=dtype)  # network-like magnitudes
    if channels_last:
        x, kernels = (t.contiguous(memory_format=torch.channels_last) for t in (x, kernels))
    return x.requires_grad_(), kernels.requires_grad_()


def _compare(impl, x, kernels, k, atol):
    out = cond_depthwise_conv2d(x, kernels, k, impl=impl)
    ref = cond_depthwise_conv2d_reference(x, kernels, k)
    g = torch.randn_like(ref)
    got = torch.autograd.grad(out, (x, kernels), g)
    want = torch.autograd.grad(ref, (x, kernels), g)
    assert (out - ref).abs().max() <= atol
    for a, b in zip(got, want, strict=True):
        assert (a - b).abs().max() <= atol
    return out, got


@pytest.fixture
def small_blocks(monkeypatch):
    monkeypatch.setattr(cdw, "CPU_BLOCK_ELEMENTS", 100)  # 1-3 planes per block, a partial last block


@pytest.mark.parametrize(
    "n, c, h, w, k", [(2, 5, 7, 9, 3), (3, 2, 10, 10, 1), (1, 3, 6, 4, 5), (2, 1, 2, 3, 7)]
)
def test_lean_in_row_blocks_matches_reference_to_1e5(small_blocks, n, c, h, w, k):
    _compare("lean", *_case(n, c, h, w, k), k, atol=1e-5)


@pytest.mark.parametrize("threads", [1, 2])
def test_lean_in_row_bands_and_worker_threads(monkeypatch, threads):
    monkeypatch.setattr(cdw, "CPU_BLOCK_ELEMENTS", 40)  # 90-pixel planes: bands of 4 rows + halo rows
    torch.set_num_threads(threads)  # 2: blocks run on the worker pool, with single-threaded ops
    x, kernels = _case(2, 3, 10, 9, 3, torch.float64)
    _compare("lean", x, kernels, 3, atol=1e-12)
    x, kernels = _case(1, 2, 9, 11, 5, torch.float64)
    _compare("lean", x, kernels, 5, atol=1e-12)
    assert torch.get_num_threads() == threads  # the pool's own setting does not leak to the caller


def test_lean_single_block_float64_exact():
    x, kernels = _case(2, 4, 9, 8, 3, torch.float64)
    _compare("lean", x, kernels, 3, atol=1e-12)


def test_lean_keeps_channels_last(small_blocks):
    x, kernels = _case(2, 4, 6, 5, 3, channels_last=True)
    out, (gx, gk) = _compare("lean", x, kernels, 3, atol=1e-5)
    for t in (out, gx, gk):
        assert t.is_contiguous(memory_format=torch.channels_last)


def test_lean_bfloat16_close_to_float32_reference():
    x, kernels = _case(1, 8, 12, 12, 3)
    ref = cond_depthwise_conv2d_reference(x, kernels)
    out = cond_depthwise_conv2d(x.bfloat16(), kernels.bfloat16())
    assert out.dtype == torch.bfloat16
    torch.testing.assert_close(out.float(), ref, rtol=2e-2, atol=2e-2)


def test_autocast_runs_in_its_dtype_and_sums_taps_in_float32():
    x, kernels = _case(1, 8, 12, 12, 3)
    ref = cond_depthwise_conv2d_reference(x.bfloat16().double(), kernels.bfloat16().double())  # exact sums
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out, saved = saved_tensor_bytes(lambda: cond_depthwise_conv2d(x, kernels))  # fp32 in, as BN gives
    assert out.dtype == torch.bfloat16 and saved == (x.nbytes + kernels.nbytes) // 2
    # one rounding of the fp32 sum to bf16 (an ulp is 2^-8 relative), not one per tap
    assert ((out.double() - ref).abs() <= 2**-8 * ref.abs() + 1e-6).all()
    out.float().sum().backward()
    assert x.grad.dtype == torch.float32 and kernels.grad.shape == kernels.shape


def test_memory_targets_saved_and_peak():
    # The targets: <= 0.6x the reference's saved-for-backward bytes and <= 0.5x its peak.
    x, kernels = _case(1, 64, 96, 96, 3)
    g = torch.randn(1, 64, 96, 96)
    result = {}
    for impl in ("reference", "lean"):
        with MemoryMeter(ignore=[x, kernels, g]) as meter:
            out, saved = saved_tensor_bytes(lambda impl=impl: cond_depthwise_conv2d(x, kernels, impl=impl))
            out.backward(g)
            del out
        result[impl] = saved, meter.peak
        x.grad = kernels.grad = None
    (ref_saved, ref_peak), (lean_saved, lean_peak) = result["reference"], result["lean"]
    assert lean_saved == x.nbytes + kernels.nbytes  # only x and the kernels
    assert lean_saved <= 0.6 * ref_saved and lean_peak <= 0.5 * ref_peak, result


def test_auto_uses_lean_on_cpu(monkeypatch):
    calls, lean = [], cdw.cond_depthwise_conv2d_lean
    monkeypatch.setattr(cdw, "cond_depthwise_conv2d_lean", lambda *a: calls.append(1) or lean(*a))
    x, kernels = _case(1, 2, 4, 4, 3)
    cond_depthwise_conv2d(x, kernels, impl="auto")
    assert calls == [1]


@triton_missing
def test_triton_refuses_cpu_tensors_outside_the_interpreter(monkeypatch):
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    x, kernels = _case(1, 2, 4, 4, 3)
    with pytest.raises(ValueError, match="CUDA tensors.*impl='auto'"):
        cond_depthwise_conv2d(x, kernels, impl="triton")


@triton_missing
@pytest.mark.parametrize(
    "n, c, h, w, k, channels_last",
    [(2, 3, 5, 7, 3, False), (1, 6, 9, 6, 3, True), (2, 2, 4, 5, 5, False), (1, 3, 3, 4, 1, False)],
)
def test_triton_kernels_in_interpreter_match_reference_to_1e5(monkeypatch, n, c, h, w, k, channels_last):
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    x, kernels = _case(n, c, h, w, k, channels_last=channels_last)
    out, grads = _compare("triton", x, kernels, k, atol=1e-5)
    if channels_last:
        assert out.is_contiguous(memory_format=torch.channels_last)


@triton_missing
def test_triton_interpreter_one_sided_gradients_and_expanded_grad_output(monkeypatch):
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    x, kernels = _case(1, 2, 5, 5, 3)
    x.requires_grad_(False)
    # .sum() hands backward an expanded (stride-0) gradient: the kernels read it through its strides
    cond_depthwise_conv2d(x, kernels, impl="triton").sum().backward()
    (want,) = torch.autograd.grad(cond_depthwise_conv2d_reference(x, kernels).sum(), kernels)
    torch.testing.assert_close(kernels.grad, want, rtol=0, atol=1e-6)


@triton_missing
def test_triton_interpreter_saves_only_x_and_kernels(monkeypatch):
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    x, kernels = _case(1, 4, 8, 8, 3)
    _, saved = saved_tensor_bytes(lambda: cond_depthwise_conv2d(x, kernels, impl="triton"))
    assert saved == x.nbytes + kernels.nbytes


@triton_missing
def test_triton_interpreter_bfloat16_sums_in_float32(monkeypatch):
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    x, kernels = (t.detach().bfloat16().requires_grad_() for t in _case(1, 4, 6, 7, 3))
    out = cond_depthwise_conv2d(x, kernels, impl="triton")
    exact = cond_depthwise_conv2d_reference(x.detach().double(), kernels.detach().double())
    # within one bf16 ulp of the exact sum: fp32 accumulation, one conversion at the end (the interpreter's
    # conversion is not always round-to-nearest, hence one ulp rather than half of one)
    assert out.dtype == torch.bfloat16
    assert ((out.double() - exact).abs() <= 2**-7 * exact.abs() + 1e-6).all()


def _lean_sum():
    torch.manual_seed(0)
    x, kernels = _case(1, 8, 6, 6, 3)
    return float(cond_depthwise_conv2d(x, kernels).detach().sum())


def _lean_in_child(queue):
    torch.set_num_threads(2)
    queue.put(_lean_sum())


def test_worker_pool_survives_fork():
    import multiprocessing as mp

    torch.set_num_threads(2)
    want = _lean_sum()  # the parent's worker pool exists now
    ctx = mp.get_context("fork")  # DataLoader workers fork like this; the child must not wait on dead threads
    queue = ctx.Queue()
    child = ctx.Process(target=_lean_in_child, args=(queue,))
    child.start()
    got = queue.get(timeout=60)
    child.join(timeout=60)
    assert child.exitcode == 0 and got == pytest.approx(want, rel=1e-6)
