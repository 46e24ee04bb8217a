"""`SpeedOptions`: each switch gives the same training step as the plain fp32 one, within tolerance."""

import copy
import logging

import pytest
import torch

from condgen.blocks.cond_conv import CCResBlock
from condgen.losses.gan import GANLoss
from condgen.networks.ccfpse_generator import CCFPSEGenerator
from condgen.networks.patch_discriminator import MultiscalePatchDiscriminator
from condgen.networks.spade_generator import SPADEGenerator
from condgen.train.speed import SpeedOptions

NC = 5


def _seg(b=2, size=32):
    labels = torch.arange(b * size * size).reshape(b, 1, size, size) // 97 % NC
    return torch.zeros(b, NC, size, size).scatter_(1, labels, 1.0)


def _nets(generator="spade", size=32):
    torch.manual_seed(0)
    if generator == "spade":
        G = SPADEGenerator(NC, crop_size=size, ngf=4, use_vae=False)
    else:
        G = CCFPSEGenerator(NC, crop_size=size, ngf=4, use_vae=False,
                            block=lambda i, o, c: CCResBlock(i, o, c, hidden=8))
    D = MultiscalePatchDiscriminator(NC, ndf=4, n_layers=2)
    return G, D


def _rel(a, b):
    return ((a - b).norm() / b.norm().clamp_min(1e-12)).item()


def _close_grads(got, want, tol):
    """All gradients together within `tol` (relative norm), and each tensor within tol of its own scale
    plus a floor for gradients that are zero in exact arithmetic (biases followed by BatchNorm)."""
    assert _rel(torch.cat([g.flatten() for g in got]), torch.cat([g.flatten() for g in want])) < tol
    floor = tol * max(g.abs().max() for g in want)
    for a, b in zip(got, want, strict=True):
        assert (a - b).abs().max() <= tol * b.abs().max() + floor


def _step(G, D, seg, real, opts=SpeedOptions()):
    """A G-step loss (hinge + D features) and the gradients of G and D, as the loop computes them."""
    seg, real = opts.inputs(seg, real)
    fake = G(seg)
    pred = D.split(D(torch.cat([fake, real]), torch.cat([seg, seg])))
    loss = GANLoss()(pred.logits, real=True, for_discriminator=False)
    loss.backward()
    grads = [p.grad.clone() for net in (G, D) for p in net.parameters() if p.grad is not None]
    return fake.detach(), loss.detach(), grads


@pytest.mark.parametrize("generator", ["spade", "ccfpse"])
def test_channels_last_step_matches(generator):
    # 64 px: at 32 px the first BatchNorms see 1x1 maps (2 values per channel), where any rounding
    # difference is amplified without bound
    seg, real = _seg(size=64), torch.rand(2, 3, 64, 64) * 2 - 1
    G, D = _nets(generator, size=64)
    G2, D2 = copy.deepcopy(G), copy.deepcopy(D)
    opts = SpeedOptions(channels_last=True)
    opts.to_memory_format(G2), opts.to_memory_format(D2)
    assert G2.conv_img.weight.is_contiguous(memory_format=torch.channels_last)
    fake, loss, grads = _step(G, D, seg, real)
    fake2, loss2, grads2 = _step(G2, D2, seg, real, opts)
    assert fake2.is_contiguous(memory_format=torch.channels_last)
    # other conv algorithms: fp32 rounding differences, amplified by batch-2 BatchNorm in a fresh network
    assert _rel(fake2, fake) < 1e-3 and _rel(loss2, loss) < 1e-4
    _close_grads(grads2, grads, 1e-3)


def test_fused_adam_matches_default_adam():
    torch.manual_seed(0)
    params = [torch.nn.Parameter(torch.randn(7, 5)), torch.nn.Parameter(torch.randn(3))]
    twins = [copy.deepcopy(params) for _ in range(2)]
    opts = [SpeedOptions(fused_adam=fused).adam(ps, lr=1e-3, betas=(0.0, 0.9))
            for fused, ps in zip((False, True), twins, strict=True)]
    assert opts[1].defaults["fused"] and not opts[0].defaults["fused"]
    for step in range(3):
        for opt, ps in zip(opts, twins, strict=True):
            for i, p in enumerate(ps):
                p.grad = torch.full_like(p, 0.1 * (step + 1 + i))
            opt.step()
    for a, b in zip(*twins, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-7)


def test_fused_adam_falls_back_with_a_warning(monkeypatch, caplog):
    real_adam = torch.optim.Adam

    def no_fused(params, **kw):
        if kw.get("fused"):
            raise RuntimeError("fused=True requires all the params to be floating point Tensors")
        return real_adam(params, **kw)

    monkeypatch.setattr(torch.optim, "Adam", no_fused)
    with caplog.at_level(logging.WARNING, logger="condgen.train"):
        param = torch.nn.Parameter(torch.ones(2))
        opt = SpeedOptions(fused_adam=True).adam([param], lr=1e-3, betas=(0.0, 0.9))
    assert isinstance(opt, real_adam) and not opt.defaults["fused"]
    assert "no fused Adam here" in caplog.text


def test_compiled_step_matches_eager():
    # The 'eager' backend checks what torch.compile captures (dynamo, spectral-norm parametrization, the
    # op's graph break) in seconds; inductor's code generation takes minutes on 2 CPU cores (see GPU runs).
    seg, real = _seg(), torch.rand(2, 3, 32, 32) * 2 - 1
    G, D = _nets()
    G2, D2 = copy.deepcopy(G), copy.deepcopy(D)
    opts = SpeedOptions(compile=True, compile_backend="eager")
    fake, loss, grads = _step(G, D, seg, real)
    fake2, loss2, grads2 = _step(opts.compiled(G2), opts.compiled(D2), seg, real)
    torch.testing.assert_close(fake2, fake, rtol=1e-5, atol=1e-6)
    _close_grads(grads2, grads, 1e-5)
    assert torch.equal(G2.conv_img.bias, G.conv_img.bias)  # the wrapper shares the module's parameters


def test_backend_flags_and_pinning_only_on_cuda():
    before = torch.backends.cudnn.benchmark
    try:
        SpeedOptions(cudnn_benchmark=True).configure_backends(torch.device("cpu"))
        assert torch.backends.cudnn.benchmark == before
        SpeedOptions(cudnn_benchmark=True).configure_backends(torch.device("cuda"))
        assert torch.backends.cudnn.benchmark is True
    finally:
        torch.backends.cudnn.benchmark = before
    assert SpeedOptions().pin(torch.device("cuda")) and not SpeedOptions().pin(torch.device("cpu"))
    assert SpeedOptions().inputs(_seg())[0].is_contiguous()
