"""`CCResBlock.checkpoint_heads`: identical outputs, gradients and state updates; less activation memory."""

import copy

import pytest
import torch

from benchmarks.memory import MemoryMeter
from condgen.blocks.cond_conv import CCResBlock
from condgen.networks.ccfpse_generator import CCFPSEGenerator

COND_NC = 6


def _twins(**kw):
    torch.manual_seed(0)
    plain = CCResBlock(8, 4, COND_NC, hidden=8, **kw)
    ckpt = copy.deepcopy(plain)
    ckpt.checkpoint_heads = True
    return plain, ckpt


def _run(block, x, cond):
    x = x.clone().requires_grad_()
    out = block(x, cond)
    out.backward(torch.ones_like(out))
    grads = {n: p.grad.clone() for n, p in block.named_parameters() if p.grad is not None}
    return out.detach(), x.grad, grads


@pytest.mark.parametrize("impl", ["lean", "reference"])
def test_same_outputs_gradients_bn_statistics_and_sn_vectors(impl):
    plain, ckpt = _twins(impl=impl)
    x, cond = torch.randn(2, 8, 8, 8), torch.randn(2, COND_NC, 8, 8)
    out_a, gx_a, grads_a = _run(plain, x, cond)
    out_b, gx_b, grads_b = _run(ckpt, x, cond)
    torch.testing.assert_close(out_a, out_b, rtol=0, atol=0)
    torch.testing.assert_close(gx_a, gx_b, rtol=0, atol=0)
    assert grads_a.keys() == grads_b.keys() and any("gen_weights1" in k for k in grads_a)
    for k in grads_a:
        torch.testing.assert_close(grads_a[k], grads_b[k], rtol=0, atol=0, msg=k)
    # BatchNorm running statistics and spectral-norm vectors advance once per forward, not again in backward
    for (name, a), b in zip(plain.state_dict().items(), ckpt.state_dict().values(), strict=True):
        assert torch.equal(a, b), name
    assert plain.norm_1.num_batches_tracked.item() == 1


def test_no_checkpoint_without_grad():
    _, ckpt = _twins()
    with torch.no_grad():
        out = ckpt(torch.randn(1, 8, 6, 6), torch.randn(1, COND_NC, 6, 6))
    assert out.grad_fn is None


def _kept_after_forward(G, seg):
    keep = [*G.parameters(), *G.buffers(), seg]
    with MemoryMeter(ignore=keep) as meter:
        fake = G(seg)
        kept = meter.current() - fake.untyped_storage().nbytes()
        fake.mean().backward()
    return kept


def test_generator_keeps_less_and_trains_the_same():
    seg = torch.zeros(1, 5, 64, 64)
    seg[:, 0, :32], seg[:, 1, 32:] = 1, 1
    nets = []
    for ckpt in (False, True):
        torch.manual_seed(0)
        block = lambda i, o, c, ckpt=ckpt: CCResBlock(i, o, c, hidden=16, checkpoint_heads=ckpt)  # noqa: E731
        nets.append(CCFPSEGenerator(5, crop_size=64, ngf=4, use_vae=False, block=block))
    plain, ckpt = nets
    kept_plain, kept_ckpt = _kept_after_forward(plain, seg), _kept_after_forward(ckpt, seg)
    assert kept_ckpt < 0.6 * kept_plain, (kept_ckpt, kept_plain)
    for (name, a), b in zip(plain.named_parameters(), ckpt.parameters(), strict=True):
        torch.testing.assert_close(a.grad, b.grad, rtol=1e-6, atol=1e-9, msg=name)
