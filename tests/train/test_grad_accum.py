"""`train.grad_accum = K` equals one K times larger batch, as documented, up to what is per forward pass.

Checked on the G and D steps of a SPADE with its VAE encoder (the KL is a sum over the batch, the other
terms means), with per-forward state held fixed: instance norm instead of BatchNorm and no spectral-norm
power steps. Those two are the documented exceptions (and the last test shows they are real).
"""

import copy
import logging

import pytest
import torch

from benchmarks.harness import PlainAccelerator
from condgen.blocks.norm import _OfficialOrderSpectralNorm
from condgen.cli.gin_setup import parse_gin
from condgen.data.landscapes import SyntheticLandscapes
from condgen.objectives import Pix2PixHDObjective
from condgen.train.loop import discriminator_step, generator_step
from condgen.train.setup import TrainSettings, build_run
from tests.train.test_loop import TINY

VAE = ["build_gan.encoder = @VAEEncoder", "SPADEGenerator.use_vae = True", "SPADEGenerator.z_dim = 16",
       "VAEEncoder.ngf = 8", "VAEEncoder.z_dim = 16", "Pix2PixHDObjective.lambda_kld = 1.0",
       "SyntheticLandscapes.crop_size = 64"]  # instance norm needs more than the 1 x 1 of 32 px's first layer


def build(batch_size: int, *bindings: str):
    parse_gin([TINY], [*VAE, *bindings])
    settings = TrainSettings(dataset=SyntheticLandscapes, objective=Pix2PixHDObjective, batch_size=batch_size)
    return build_run(settings, accelerator=PlainAccelerator("no", torch.device("cpu")))


def step_grads(run, micro, *, fixed_spectral: bool):
    ctx = run.step
    for net in (ctx.G, ctx.D, ctx.E):
        for m in net.modules():
            if isinstance(m, _OfficialOrderSpectralNorm) and fixed_spectral:
                m.eval()  # no power step: every micro-batch sees the same sigma
    ctx.opt_G.step = ctx.opt_D.step = lambda *a, **k: None  # keep the gradients, not the update
    losses = generator_step(ctx, micro)
    g = {f"G.{k}": p.grad.clone() for k, p in [*ctx.G.named_parameters(), *ctx.E.named_parameters()]}
    losses |= discriminator_step(ctx, micro)
    g |= {f"D.{k}": p.grad.clone() for k, p in ctx.D.named_parameters() if p.grad is not None}
    return losses, g


@pytest.fixture(autouse=True)
def _deterministic_latent(monkeypatch):
    """z = mu: the VAE's sampling noise would differ between one draw of 4 and two draws of 2."""
    import condgen.objectives.pix2pixhd as p2p

    monkeypatch.setattr(p2p, "reparameterize", lambda mu, logvar: mu)


def batches(run, n: int):
    items = [run.data[i] for i in range(n)]
    from torch.utils.data import default_collate

    return run.to_device(default_collate(items))


def split(batch, k: int):
    seg, real = batch
    return list(zip(seg.chunk(k), real.chunk(k), strict=True))


def compare(a, b) -> float:
    """Largest error relative to each tensor's scale; biases that a norm makes gradient-free (~1e-10) are
    measured against 1e-4 of the largest gradient instead."""
    floor = 1e-4 * max(t.abs().max() for t in b.values())
    return max(((a[k] - b[k]).abs().max() / b[k].abs().max().clamp_min(floor)).item() for k in b)


def test_grad_accum_equals_a_larger_batch_for_every_loss_and_gradient():
    # float64: in float32 the two summation orders differ by up to ~2e-4 of a gradient's scale, by CPU
    one = build(4, "SPADE.param_free = 'instance'")
    for net in (one.step.G, one.step.D, one.step.E):
        net.double()
    two = copy.deepcopy(one)
    batch = tuple(t.double() for t in batches(one, 4))
    big_losses, big = step_grads(one, [batch], fixed_spectral=True)
    acc_losses, acc = step_grads(two, split(batch, 2), fixed_spectral=True)
    assert set(acc_losses) == set(big_losses) and "G_KLD" in big_losses
    for k in big_losses:  # the KL summed over both micro-batches, the means averaged
        assert torch.allclose(acc_losses[k], big_losses[k], rtol=1e-5, atol=1e-6), k  # logged in float32
    assert compare(acc, big) < 1e-8


def test_the_summed_kl_was_half_as_strong_without_the_scaling(monkeypatch):
    """Before: every term was averaged over the micro-batches, the summed KL too (1/K of a larger batch's)."""
    one = build(4, "SPADE.param_free = 'instance'")
    two = copy.deepcopy(one)
    monkeypatch.setattr(two.step.objective, "batch_summed", ())
    batch = batches(one, 4)
    big_losses, _ = step_grads(one, [batch], fixed_spectral=True)
    acc_losses, _ = step_grads(two, split(batch, 2), fixed_spectral=True)
    assert torch.allclose(acc_losses["G_KLD"] * 2, big_losses["G_KLD"], rtol=1e-5)


def test_batchnorm_and_spectral_norm_are_per_micro_batch():
    batch_norm = build(4, "SPADE.param_free = 'batch'")
    _, big = step_grads(copy.deepcopy(batch_norm), [batches(batch_norm, 4)], fixed_spectral=True)
    _, acc = step_grads(batch_norm, split(batches(batch_norm, 4), 2), fixed_spectral=True)
    assert compare(acc, big) > 1e-3
    power = build(4, "SPADE.param_free = 'instance'")
    _, big = step_grads(copy.deepcopy(power), [batches(power, 4)], fixed_spectral=False)
    _, acc = step_grads(power, split(batches(power, 4), 2), fixed_spectral=False)
    assert compare(acc, big) > 1e-4


def test_a_kl_weighted_for_another_batch_warns_with_the_fix(caplog):
    with caplog.at_level(logging.WARNING, logger="condgen.train"):
        build(8, "KLDLoss.paper_batch = 2")
    assert "weighs 4x what it does in the paper's setting (2 per process)" in caplog.text
    assert "KLDLoss.batch = 2" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="condgen.train"):
        build(8, "KLDLoss.paper_batch = 2", "KLDLoss.reduction = 'mean'", "KLDLoss.batch = 2")
        build(2, "KLDLoss.paper_batch = 2")
    assert "paper's setting" not in caplog.text


def test_kl_mean_with_a_batch_is_batch_independent():
    from condgen.losses.kl import KLDLoss

    mu, logvar = torch.randn(8, 16), torch.randn(8, 16)
    per_2 = KLDLoss(reduction="mean", batch=2)  # the official weight at 2 images, for any batch
    assert torch.allclose(per_2(mu, logvar), KLDLoss()(mu, logvar) / 4, rtol=1e-6)
    assert torch.allclose(per_2(mu[:2], logvar[:2]), KLDLoss()(mu[:2], logvar[:2]), rtol=1e-6)
    with pytest.raises(ValueError, match="needs KLDLoss.reduction = 'mean'"):
        KLDLoss(batch=2)
