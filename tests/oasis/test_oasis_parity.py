"""condgen's OASIS against the original (boschresearch/OASIS aeb875f): the tiny parity fixture.

The original state dicts (parameters from the fixture's recipe, buffers stored) load strictly through
`condgen.convert.oasis`; G and D outputs in eval and train mode, spectral-norm sigmas, buffers, every loss
term, the class weights, the LabelMix case and the gradients of both objectives match within the
tolerances the fixture README measured (section 8; relative to each tensor's std, absolute for the
round-off-only biases). Parameter counts at the three paper configurations are exact.
"""

import copy

import pytest
import torch
from torch import Tensor, nn

from condgen.convert.keys import load_official_state, rename_official
from condgen.convert.oasis import build_oasis, load_oasis, parse_oasis_flags, to_condgen_channels
from condgen.data.oasis_labels import from_oasis, oasis_to_condgen, to_oasis
from condgen.networks.oasis_discriminator import OASISDiscriminator
from condgen.networks.oasis_generator import OASISGenerator
from condgen.objectives import oasis as oasis_objective
from condgen.objectives.oasis import OASISObjective, class_weights, labelmix_mask, n1_cross_entropy

TINY = "--dataset_mode ade20k --label_nc 12 --channels_G 16 --crop_size 128 --aspect_ratio 2.0"
OUT_TOL, STATE_TOL, LOSS_RTOL = 1e-4, 1e-5, 1e-5  # README section 8


def rel(ours: Tensor, ref: Tensor) -> float:
    """max |ours - ref| / std(ref)."""
    return ((ours.double() - ref.double()).abs().max() / ref.double().std()).item()


@pytest.fixture(scope="module")
def loaded(oasis_fx, oasis_recipe) -> dict[str, nn.Module]:
    r = oasis_recipe
    states = {n: r.build_state_dict(oasis_fx[n]["recipe"], oasis_fx[n]["buffers"]) for n in ("G", "D")}
    for n in ("G", "D"):  # the recipe code reproduces the fixture's parameters
        first = next(iter(oasis_fx[n]["param_sha256"]))
        assert r.sha256_f32(states[n][first]) == oasis_fx[n]["param_sha256"][first]
        assert list(states[n]) != [] and set(states[n]) == set(oasis_fx[n]["keys"])
    return load_oasis(TINY, G=states["G"], D=states["D"], channel_order="oasis")


@pytest.fixture
def nets(loaded) -> dict[str, nn.Module]:
    """A fresh copy of the loaded initial state (every fixture block starts from it)."""
    return {k: copy.deepcopy(v) for k, v in loaded.items()}


def sigmas(net: nn.Module, renames: dict) -> dict[str, float]:
    """sigma = u . (W v) of every spectral-norm layer, from the current u, v (OASIS layer names)."""
    out = {}
    ours_to_theirs = {}
    for theirs, ours in renames.items():
        ours_to_theirs[ours] = theirs
    for name, m in net.named_modules():
        if hasattr(m, "parametrizations") and "weight" in m.parametrizations:
            p = m.parametrizations.weight
            w = p.original.detach().flatten(1)
            sn = p[0]
            theirs = name + "."
            for ours_prefix in sorted(ours_to_theirs, key=len, reverse=True):
                if theirs.startswith(ours_prefix):
                    theirs = ours_to_theirs[ours_prefix] + theirs[len(ours_prefix) :]
                    break
            out[theirs.rstrip(".")] = torch.dot(sn._u, w @ sn._v).item()
    return out


def check_sigmas(net: nn.Module, ref: dict[str, float]) -> None:
    """Eval-mode sigmas from the stored u, v."""
    ours = sigmas(net, type(net).OFFICIAL_RENAMES)
    assert set(ours) == set(ref)
    for k, v in ref.items():
        assert abs(ours[k] - float(v)) <= STATE_TOL * abs(float(v)), k


def check_buffer_dict(ours: dict[str, Tensor], ref: dict[str, Tensor]) -> None:
    renames = OASISGenerator.OFFICIAL_RENAMES if "fc.bias" in ours else OASISDiscriminator.OFFICIAL_RENAMES
    for k, v in rename_official(ref, renames).items():
        if k.endswith("num_batches_tracked"):  # the original's sync BN never counts (README section 2)
            continue
        assert rel(ours[k], v) <= STATE_TOL or (ours[k] - v).abs().max() <= 1e-7, k


def test_strict_load_maps_every_key(oasis_fx):
    cfg = parse_oasis_flags(TINY)
    nets = build_oasis(cfg)
    for n in ("G", "D"):
        renamed = rename_official(dict.fromkeys(oasis_fx[n]["keys"], 0), type(nets[n]).OFFICIAL_RENAMES)
        assert set(renamed) == set(nets[n].state_dict()), n
        assert len(renamed) == len(oasis_fx[n]["keys"]) == {"G": 208, "D": 130}[n]
    assert sum(p.numel() for p in nets["G"].parameters()) == 9_719_795
    assert sum(p.numel() for p in nets["D"].parameters()) == 22_249_934


@torch.no_grad()
def test_generator_eval(nets, oasis_fx):
    G = nets["G"]
    seg, z = oasis_fx["label_onehot"], oasis_fx["z"]
    fc_input = torch.nn.functional.interpolate(G.condition.label_input(seg, z), size=(2, 4), mode="nearest")
    assert torch.equal(fc_input, oasis_fx["G_fc_input"])
    assert rel(G(seg, z), oasis_fx["fake_eval"]) <= OUT_TOL
    check_sigmas(G, oasis_fx["G_sigma_eval"])


@torch.no_grad()
def test_discriminator_eval(nets, oasis_fx):
    D = nets["D"]
    assert rel(D(oasis_fx["image"]), oasis_fx["d_real_eval"]) <= OUT_TOL
    assert rel(D(oasis_fx["fake_train"]), oasis_fx["d_fake_eval"]) <= OUT_TOL
    check_sigmas(D, oasis_fx["D_sigma_eval"])


class Recorder(nn.Module):
    """A network that keeps each call's output, sigmas and spectral-norm / BN buffers (train-mode checks)."""

    def __init__(self, net: nn.Module, z: Tensor | None = None) -> None:
        super().__init__()
        self.net, self.z, self.calls = net, z, []

    def forward(self, x: Tensor, seg: Tensor | None = None) -> Tensor:
        out = self.net(x, self.z) if self.z is not None else self.net(x, seg)
        buffers = {k: v.clone() for k, v in self.net.state_dict().items() if not k.endswith(".original")}
        self.calls.append((out.detach().clone(), sigmas(self.net, type(self.net).OFFICIAL_RENAMES), buffers))
        return out


def check_call(call: tuple, fx: dict, out: str, sigma: str, buffers: str | None = None) -> None:
    ours, sig, bufs = call
    assert rel(ours, fx[out]) <= OUT_TOL, out
    assert set(sig) == set(fx[sigma])
    for k, v in fx[sigma].items():
        assert abs(sig[k] - float(v)) <= STATE_TOL * abs(float(v)), (sigma, k)
    if buffers is not None:
        check_buffer_dict(bufs, fx[buffers])


def test_class_weights_labelmix_and_losses(oasis_fx):
    fx, obj = oasis_fx, OASISObjective()
    target, weight = obj.targets(fx["label_onehot"])
    assert torch.equal(target, fx["n1_target_real"])
    labels = target - 1
    counts = torch.bincount(labels.flatten(), minlength=13).tolist()
    assert counts == fx["class_pixel_counts"]
    coefficients = class_weights(labels, 13, dontcare=0)
    assert torch.equal(torch.isinf(coefficients), torch.isinf(fx["cb_coefficients"]))
    finite = torch.isfinite(fx["cb_coefficients"])
    torch.testing.assert_close(coefficients[finite], fx["cb_coefficients"][finite], rtol=LOSS_RTOL, atol=0)
    torch.testing.assert_close(weight.unsqueeze(1), fx["cb_weight_map"], rtol=LOSS_RTOL, atol=0)
    assert int((coefficients[1:] > 0).sum() - torch.isinf(coefficients).sum()) == fx["cb_num_classes"]

    assert torch.unique(labels).tolist() == fx["labelmix_classes"]
    bits = torch.tensor(fx["labelmix_bits"])
    mask = labelmix_mask(labels, bits, class0_quirk=True)
    assert torch.equal(mask, fx["labelmix_mask"])
    plain = labelmix_mask(labels, bits)  # every class its own bit: class 0's pixels take bit 1 here
    assert torch.equal(plain[labels.unsqueeze(1) != 0], mask[labels.unsqueeze(1) != 0])
    assert bool((plain[labels.unsqueeze(1) == 0] == 1).all())
    mixed = mask * fx["image"] + (1 - mask) * fx["fake_train"]
    assert rel(mixed, fx["labelmix_mixed"]) <= OUT_TOL

    def check(value: Tensor, ref: float) -> None:
        assert abs(value.item() - ref) <= LOSS_RTOL * abs(ref)

    losses = fx["losses"]
    check(n1_cross_entropy(fx["d_fake_train"], 0), losses["D_fake"])
    check(n1_cross_entropy(fx["d_real_train"], target, weight), losses["D_real"])
    check(n1_cross_entropy(fx["d_fake_train"], target, weight), losses["G_adv"])
    lm = torch.nn.functional.mse_loss(
        mask * fx["d_real_train"] + (1 - mask) * fx["d_fake_train"], fx["d_mixed_train"]
    )
    check(lm, losses["labelmix_mse"])
    check(10 * lm, losses["D_labelmix"])
    on_eval = fx["losses_on_eval_outputs"]
    check(n1_cross_entropy(fx["d_fake_eval"], 0), on_eval["D_fake"])
    check(n1_cross_entropy(fx["d_real_eval"], target, weight), on_eval["D_real"])
    check(n1_cross_entropy(fx["d_fake_eval"], target, weight), on_eval["G_adv"])


def check_grads(net: nn.Module, fx: dict, which: str) -> dict[str, float]:
    """Every parameter's gradient against the stored (whole or strided) one; returns the errors."""
    grads = {n: p.grad for n, p in net.named_parameters()}
    ref = rename_official(fx[f"grad_{which}"], type(net).OFFICIAL_RENAMES)
    names = dict(zip(ref, fx[f"grad_{which}"], strict=True))  # ours -> theirs
    assert set(ref) == set(grads)
    roundoff = set(fx[f"grad_{which}_roundoff_only"])
    errors = {}
    for ours, stored in ref.items():
        theirs = names[ours]
        g = grads[ours].flatten()[:: fx[f"grad_{which}_stride"][theirs]].reshape(stored.shape)
        stats = fx[f"grad_{which}_stats"][theirs]
        err = (g.double() - stored.double()).abs().max().item()
        if theirs in roundoff:
            assert err <= 1e-6 and g.abs().max() <= 1e-6, theirs
            continue
        errors[theirs] = err / stats["std"]
        assert err <= 2e-3 * stats["std"] or err <= 1e-3 * stats["absmax"], (theirs, err, stats)
        full = grads[ours].double()
        assert abs(full.std().item() - stats["std"]) <= 1e-3 * stats["std"], theirs
    return errors


@pytest.mark.slow
def test_generator_step_gradients(nets, oasis_fx):
    fx = oasis_fx
    G, D = nets["G"].train(), nets["D"].train()
    g, d = Recorder(G, fx["z"]), Recorder(D)
    losses = OASISObjective().generator_losses(g, d, None, fx["label_onehot"], fx["image"])
    assert set(losses) == {"G_adv"}
    # train-mode forwards (fixture blocks A.2 and D): G's output, sigmas, BN / SN buffers; D's call 1
    check_call(g.calls[0], fx, "fake_train", "G_sigma_train", "G_buffers_after_train_forward")
    check_call(d.calls[0], fx, "d_fake_train", "D_sigma_train_call1", "D_buffers_after_train_call1")
    assert abs(losses["G_adv"].item() - fx["step_G"]["loss_G"]) <= LOSS_RTOL * fx["step_G"]["loss_G"]
    losses["G_adv"].backward(inputs=list(G.parameters()))
    check_grads(G, fx, "G")


@pytest.mark.slow
def test_discriminator_step_gradients(nets, oasis_fx, monkeypatch):
    fx = oasis_fx
    G, D = nets["G"].train(), nets["D"].train()
    bits = torch.tensor(fx["labelmix_bits"])
    monkeypatch.setattr(
        oasis_objective,
        "labelmix_mask",
        lambda labels, class0_quirk: labelmix_mask(labels, bits, class0_quirk=class0_quirk),
    )
    obj = OASISObjective(labelmix_class0_quirk=True)
    g, d = Recorder(G, fx["z"]), Recorder(D)
    losses = obj.discriminator_losses(g, d, None, fx["label_onehot"], fx["image"])
    # fixture block B.2: D's three train calls in the original's order, from the initial state
    assert rel(g.calls[0][0], fx["fake_train"]) <= OUT_TOL
    check_call(d.calls[0], fx, "d_fake_train", "D_sigma_train_call1", "D_buffers_after_train_call1")
    check_call(d.calls[1], fx, "d_real_train", "D_sigma_train_call2")
    check_call(d.calls[2], fx, "d_mixed_train", "D_sigma_train_call3")
    step = fx["step_D"]
    for ours, theirs in (
        ("D_fake", "loss_D_fake"),
        ("D_real", "loss_D_real"),
        ("D_labelmix", "loss_D_labelmix"),
    ):
        assert abs(losses[ours].item() - step[theirs]) <= LOSS_RTOL * abs(step[theirs]), ours
    total = sum(losses.values())
    assert abs(total.item() - step["loss_D"]) <= LOSS_RTOL * step["loss_D"]
    total.backward()
    assert all(p.grad is None for p in G.parameters())
    check_grads(D, fx, "D")


@torch.no_grad()
def test_condgen_channel_order(oasis_fx, oasis_recipe):
    """Converted to condgen's order (COCO-like: don't-care channel last), the nets read condgen's maps."""
    fx = oasis_fx
    flags = "--dataset_mode coco --label_nc 12 --channels_G 16 --crop_size 128 --aspect_ratio 2.0"
    cfg = parse_oasis_flags(flags)
    assert cfg.semantic_nc == 13 and cfg.dontcare == 12
    sd_g = oasis_recipe.build_state_dict(fx["G"]["recipe"], fx["G"]["buffers"])
    head = {
        k: oasis_recipe.build_state_dict({k: fx["D"]["recipe"][k]}, {})[k]
        for k in ("layer_up_last.weight", "layer_up_last.bias")
    }
    G = build_oasis(cfg, ["G"])["G"].eval()
    load_official_state(G, to_condgen_channels(sd_g, "G", cfg), OASISGenerator.OFFICIAL_RENAMES)
    seg = from_oasis(fx["label_onehot"], 12)
    assert torch.equal(to_oasis(seg, 12), fx["label_onehot"])
    assert seg[:, 12].sum() == fx["class_pixel_counts"][0]  # OASIS's value 0 is condgen's last channel
    assert rel(G(seg, fx["z"]), fx["fake_eval"]) <= OUT_TOL
    ours = to_condgen_channels(head, "D", cfg)["layer_up_last.weight"]
    perm = oasis_to_condgen(13, 12)
    assert torch.equal(ours[0], head["layer_up_last.weight"][0])  # "fake" stays channel 0
    for j, v in enumerate(perm):  # condgen channel j + 1 = OASIS channel v + 1
        assert torch.equal(ours[j + 1], head["layer_up_last.weight"][v + 1])


@pytest.mark.parametrize(
    "dataset, semantic_nc, size, G, D, G_no_noise",
    [
        ("ade20k", 151, (256, 1.0), 74_314_691, 22_258_904, 72_545_219),
        ("coco", 183, (256, 1.0), 75_199_427, 22_260_984, 73_429_955),
        ("cityscapes", 35, (512, 2.0), 71_107_523, 22_251_364, 69_338_051),
    ],
)
def test_paper_parameter_counts(oasis_fx, dataset, semantic_nc, size, G, D, G_no_noise):
    from condgen.blocks.condition import LabelMapCondition

    counts = oasis_fx["param_counts"][dataset]
    assert (counts["G"]["params"], counts["D"]["params"], counts["G_no_3dnoise"]["params"]) == (
        G,
        D,
        G_no_noise,
    )
    cfg = parse_oasis_flags(f"--dataset_mode {dataset}")
    assert cfg.semantic_nc == semantic_nc and (cfg.spec.crop_size, cfg.spec.aspect_ratio) == size

    def n(m: nn.Module) -> int:
        return sum(p.numel() for p in m.parameters())

    with torch.device("meta"):
        kw = dict(crop_size=size[0], aspect_ratio=size[1])
        assert n(OASISGenerator(semantic_nc, **kw)) == G
        assert n(OASISGenerator(semantic_nc, condition=LabelMapCondition, **kw)) == G_no_noise
        assert n(OASISDiscriminator(semantic_nc)) == D
