"""condgen's DP-GAN against the original (sj-li/DP_GAN 81ecf74) on its tiny configuration.

The original state dicts load strictly through `condgen.convert.load_oasis(..., repo='dpgan')` (original
label-channel order); G's outputs in eval and train mode (with its label pyramid), D's N+1 logits and head
scores, every loss term of `DPGANObjective`'s G and D steps (the multi-scale hinge terms as values without
gradient: the original's behaviour) and the gradients of both steps match within the tolerances the
fixture README suggests (section 10); the heads get no gradient, as in the original.
"""

import copy
from functools import partial

import pytest
import torch
from torch import Tensor, nn

from condgen.convert.keys import rename_official
from condgen.convert.oasis import load_oasis
from condgen.networks.dpgan import DPGANDiscriminator, DPGANGenerator
from condgen.objectives import dpgan as dpgan_objective
from condgen.objectives.base import total
from condgen.objectives.dpgan import DPGANObjective
from tests.clade_dpgan.conftest import load_fixture, rel, state

TINY = "--dataset_mode ade20k --label_nc 12 --channels_G 16 --crop_size 128 --aspect_ratio 2.0"
OUT_TOL, LOSS_TOL = 5e-4, 1e-5  # README section 10


@pytest.fixture(scope="module")
def fx() -> dict:
    return load_fixture("dpgan/dpgan_compact.pt")


@pytest.fixture(scope="module")
def loaded(fx) -> dict[str, nn.Module]:
    return load_oasis(TINY, G=state(fx["G"]), D=state(fx["D"]), channel_order="oasis", repo="dpgan")


@pytest.fixture
def nets(loaded) -> dict[str, nn.Module]:
    return {k: copy.deepcopy(v) for k, v in loaded.items()}


def seg_of(fx: dict) -> Tensor:
    label = fx["label"].long()
    return torch.zeros(label.shape[0], 13, *label.shape[-2:]).scatter_(1, label, 1.0)


class FixedNoise(nn.Module):
    """G with the fixture's noise z (the objective calls G(seg))."""

    def __init__(self, G: nn.Module, z: Tensor) -> None:
        super().__init__()
        self.G, self.z = G, z

    def forward(self, seg: Tensor) -> Tensor:
        return self.G(seg, self.z)


def check_d(out, ref: dict, stride: int) -> None:
    assert (out.logits.flatten()[::stride] - ref["logits"]).abs().max() <= OUT_TOL * ref["logits_std"]
    for ours, theirs in zip(out.scores, ref["scores"], strict=True):
        scale = max(theirs.std().nan_to_num(0).item(), theirs.abs().max().item())  # one-element maps: no std
        assert (ours - theirs).abs().max() <= OUT_TOL * scale


def test_sizes_and_keys(loaded, fx):
    assert sum(p.numel() for p in loaded["G"].parameters()) == 8_524_659
    assert sum(p.numel() for p in loaded["D"].parameters()) == 22_915_920
    assert isinstance(loaded["G"], DPGANGenerator) and isinstance(loaded["D"], DPGANDiscriminator)
    assert not any(p.requires_grad for p in loaded["D"].dis.parameters())  # official: heads frozen


@torch.no_grad()
def test_generator_and_discriminator_outputs(nets, fx):
    seg, z = seg_of(fx), fx["z"]
    G = nets["G"].eval()
    assert rel(G(seg, z), fx["fake_eval"]) <= OUT_TOL
    top = G.condition(G.condition.label_input(seg, z))[0][:, 64:]  # m_0 = [P6; P6]
    assert rel(top, fx["G_pyramid_coarsest_eval"]) <= OUT_TOL
    G = copy.deepcopy(nets["G"]).train()
    assert rel(G(seg, z), fx["fake_train"]) <= OUT_TOL
    ours = G.state_dict()
    for k, v in rename_official(fx["G_buffers_after_train_forward"], type(G).OFFICIAL_RENAMES).items():
        if "running_" in k:
            assert (ours[k] - v).abs().max() <= 1e-4 * v.std().clamp_min(1e-6), k
    D = nets["D"].eval()
    check_d(D(fx["image"]), fx["d_real_eval"], fx["d_logits_stride"])


def grad_check(net: nn.Module, fx: dict, which: str) -> None:
    """README section 10: <= 3e-2 std(full) or <= 5e-3 absmax(full); round-off-only |g| <= 1e-4."""
    ours = {n: p.grad for n, p in net.named_parameters()}
    ref = fx[f"grad_{which}"]
    renamed = rename_official(ref, type(net).OFFICIAL_RENAMES)
    none = set(rename_official(dict.fromkeys(fx[f"grad_{which}_none"], 0), type(net).OFFICIAL_RENAMES))
    assert {n for n, g in ours.items() if g is None} == none
    assert set(renamed) == {n for n, g in ours.items() if g is not None}
    for (mine, stored), theirs in zip(renamed.items(), ref, strict=True):
        g = ours[mine].flatten()[:: fx[f"grad_{which}_stride"].get(theirs, 1)].reshape(stored.shape)
        err = (g - stored).abs().max().item()
        if theirs in fx[f"grad_{which}_roundoff_only"]:
            assert g.abs().max() <= 1e-4, theirs
            continue
        scale = fx[f"grad_{which}_scale"][theirs]
        assert err <= 3e-2 * scale["std"] or err <= 5e-3 * scale["absmax"], (theirs, err, scale)


def test_training_steps(loaded, fx, monkeypatch):
    seg, real, z = seg_of(fx), fx["image"], fx["z"]
    monkeypatch.setattr(dpgan_objective, "labelmix_mask", partial(dpgan_objective.labelmix_mask,
                                                                  bits=fx["labelmix_bits"]))
    objective = DPGANObjective(labelmix_class0_quirk=True)
    nets = {k: copy.deepcopy(v) for k, v in loaded.items()}  # each step starts from the stored state
    G, D = nets["G"].train(), nets["D"].train()
    losses = objective.generator_losses(FixedNoise(G, z), D, None, seg, real)
    ref = fx["losses"]
    for ours, theirs in (("G_adv", "G_adv"), ("G_ms_hinge", "G_ms_hinge"), ("G_align", "G_align")):
        assert abs(losses[ours].item() - ref[theirs]) <= LOSS_TOL, ours
    assert not losses["G_ms_hinge"].requires_grad  # the original's `.item()`
    loss = total(losses)
    assert abs(loss.item() - fx["step_G"]["loss_G"]) <= LOSS_TOL
    loss.backward()
    grad_check(G, fx, "G")

    nets = {k: copy.deepcopy(v) for k, v in loaded.items()}
    G, D = nets["G"].train(), nets["D"].train()
    losses = objective.discriminator_losses(FixedNoise(G, z), D, None, seg, real)
    for ours, theirs in (("D_fake", "D_fake"), ("D_ms_fake", "D_ms_fake"), ("D_real", "D_real"),
                         ("D_ms_real", "D_ms_real"), ("D_labelmix", "D_labelmix")):
        assert abs(losses[ours].item() - ref[theirs]) <= LOSS_TOL, ours
    loss = total(losses)
    assert abs(loss.item() - fx["step_D"]["loss_D"]) <= LOSS_TOL
    ours = D.state_dict()  # the frozen heads' BN statistics still move, call by call, as the original's
    for k, v in fx["D_buffers_after_train_call3"].items():
        if "running_" in k:
            assert (ours[k] - v).abs().max() <= 1e-4 * v.abs().max(), k
    loss.backward()
    grad_check(D, fx, "D")
    assert all(p.grad is None for p in G.parameters())


def test_training_the_heads_gives_them_gradients():
    """The switch: `train_heads=True` makes the hinge terms differentiable and the heads trainable."""
    for train_heads in (False, True):
        torch.manual_seed(0)
        D = DPGANDiscriminator(13, ndf=4, head_channels=8, train_heads=train_heads).train()
        label = torch.randint(0, 13, (2, 1, 64, 64))
        seg = torch.zeros(2, 13, 64, 64).scatter_(1, label, 1.0)
        G = lambda s: torch.tanh(torch.randn(s.shape[0], 3, *s.shape[-2:]))  # noqa: E731
        losses = DPGANObjective().discriminator_losses(G, D, None, seg, torch.rand(2, 3, 64, 64) * 2 - 1)
        assert losses["D_ms_fake"].requires_grad == losses["D_ms_real"].requires_grad == train_heads
        total(losses).backward()
        grads = [head[11].weight.grad for head in D.dis]  # (biases before a BN get ~0 anyway)
        if train_heads:
            assert all(g is not None and g.abs().sum() > 0 for g in grads)
        else:
            assert grads == [None, None]
