"""condgen's SEAN against the original (ZPdesu/SEAN 04c7536): the compact tiny parity fixture.

The original G and D state dicts (parameters rebuilt from their recipes, buffers stored) load strictly
through `condgen.convert.sean` and export back key for key; the style matrix, G in eval and train mode
(with the original's stored per-layer noise), the buffers after a train forward, D's logits, every loss term
of a G step and a D step, and their gradients match within the fixture README's tolerances (section 7);
per-region editing (one class's style swapped or interpolated) gives the original's editing outputs; the
batched per-class style layers give the numbers of the original's 19 separate layers.
"""

import copy
import statistics

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from condgen.blocks.sean import ACE, broadcast_regions
from condgen.convert.sean import from_original, load_sean, to_original
from condgen.losses.perceptual import VGGLoss
from condgen.networks.discriminator import discriminate
from condgen.networks.sean_generator import set_noise
from condgen.objectives.sean import SEANObjective
from tests.sean.conftest import FLAGS

OUT_TOL, STATE_TOL, LOSS_RTOL = 1e-4, 1e-5, 1e-5  # README section 7: images / buffers / losses
GRAD_MAX, GRAD_MEDIAN, ROUNDOFF_ABS = 0.1, 1e-2, 1e-5  # gradients: per tensor, median over tensors, round-off


def rel(ours: Tensor, ref: Tensor) -> float:
    """max |ours - ref| / std(ref)."""
    return ((ours.double() - ref.double()).abs().max() / ref.double().std()).item()


@pytest.fixture(scope="module")
def loaded(original_states) -> dict[str, nn.Module]:
    return load_sean(FLAGS, G=original_states["G"], D=original_states["D"])


@pytest.fixture
def nets(loaded, sean_fx) -> dict[str, nn.Module]:
    """A fresh copy of the loaded state, with the fixture's noise in every ACE layer."""
    out = {k: copy.deepcopy(v) for k, v in loaded.items()}
    set_noise(out["G"], sean_fx["ace_noise"])
    return out


@pytest.fixture(scope="module")
def objective(original_states) -> SEANObjective:
    obj = SEANObjective(vgg_loss=lambda: VGGLoss(random_init=True))
    theirs = {k.split(".", 2)[2]: v for k, v in original_states["VGG"].items()}  # vgg.sliceN.<index>.weight
    obj.vgg_loss.vgg.features.load_state_dict(theirs, strict=True)
    return obj


def test_convert_round_trip(original_states, loaded):
    """Strict load, and the export gives back every original key and value (dead BN and fc_mu10..18 too)."""
    back = to_original(loaded["G"].state_dict())
    assert list(back) != [] and set(back) == set(original_states["G"])
    for k, v in original_states["G"].items():
        assert torch.equal(back[k], v), k
    with pytest.raises(ValueError, match="fc_mu3.weight is missing"):
        from_original({k: v for k, v in original_states["G"].items() if k != "up_0.ace_0.fc_mu3.weight"})


def test_style_matrix_and_eval(nets, sean_fx, sean_inputs):
    seg, img = sean_inputs
    G = nets["G"].eval()
    with torch.no_grad():
        style = G.encode_style(img, seg)
        assert rel(style, sean_fx["style_matrix"]) <= OUT_TOL
        assert style[0, 1].abs().max() == 0 and style[:, 6].abs().max() == 0  # absent regions: zero rows
        assert rel(G(seg, style), sean_fx["fake_eval"]) <= OUT_TOL


def test_train_forward_and_buffers(nets, sean_fx, sean_inputs):
    """G(seg, img): the image encoded inside G, batch statistics, one spectral-norm step."""
    seg, img = sean_inputs
    G = nets["G"].train()
    with torch.no_grad():
        assert rel(G(seg, img), sean_fx["fake_train"]) <= OUT_TOL
    ours = to_original(G.state_dict())
    for k, ref in sean_fx["G_buffers_after_train"].items():
        if k.endswith("num_batches_tracked"):
            continue  # the original's functional BN leaves it at 0
        assert (ours[k] - ref).abs().max() <= STATE_TOL * ref.abs().max(), k


def check_grads(grads: dict[str, Tensor], ref: dict, roundoff: set[str]) -> list[float]:
    errors = []
    for k, r in ref.items():
        g = grads[k].flatten()[:: r["stride"]]
        if k in roundoff:
            assert g.abs().max() <= ROUNDOFF_ABS, k
            continue
        err = ((g.double() - r["sample"].double()).abs().max() / r["rms"]).item()
        assert err <= GRAD_MAX, (k, err)
        errors.append(err)
    assert statistics.median(errors) <= GRAD_MEDIAN
    return errors


def test_generator_step(nets, objective, sean_fx, sean_inputs):
    seg, img = sean_inputs
    G, D = nets["G"].train(), nets["D"].train()
    losses = objective.generator_losses(G, D, None, seg, img)
    ref = sean_fx["step_G"]
    for ours, theirs in (("G_GAN", "GAN"), ("G_feat", "GAN_Feat"), ("G_VGG", "VGG")):
        assert losses[ours].item() == pytest.approx(ref[theirs], rel=LOSS_RTOL)
    assert set(losses) == {"G_GAN", "G_feat", "G_VGG"}  # no KL: the original computes none
    sum(losses.values()).backward()
    params = G.named_parameters()
    grads = to_original({k: torch.zeros_like(p) if p.grad is None else p.grad for k, p in params})
    check_grads(grads, sean_fx["grad_G"], set(sean_fx["grad_G_roundoff_only"]))
    for k in sean_fx["grad_G_none"]:  # no gradient in the original: exactly zero in the stacked layers
        assert grads[k].abs().max() == 0, k


def test_discriminator_step(nets, objective, sean_fx, sean_inputs):
    """D's logits on [fake; real] (the fake from G in train mode) and the D step's losses and gradients
    (the objective's own computation, written out to reuse the one G forward)."""
    seg, img = sean_inputs
    G, D = nets["G"].train(), nets["D"].train()
    with torch.no_grad():
        fake = G(seg, img)
    pred_fake, pred_real = discriminate(D, fake, img, seg)
    for side, pred in (("fake", pred_fake), ("real", pred_real)):
        for ours, ref in zip(pred.logits, sean_fx["d_train_logits"][side], strict=True):
            assert rel(ours, ref) <= OUT_TOL
    losses = {"D_fake": objective.gan_loss(pred_fake.logits, real=False),
              "D_real": objective.gan_loss(pred_real.logits, real=True)}
    assert losses["D_fake"].item() == pytest.approx(sean_fx["step_D"]["D_Fake"], rel=LOSS_RTOL)
    assert losses["D_real"].item() == pytest.approx(sean_fx["step_D"]["D_real"], rel=LOSS_RTOL)
    sum(losses.values()).backward()
    sn = "parametrizations.weight.original"
    grads = {k.replace(sn, "weight_orig"): p.grad for k, p in D.named_parameters()}
    check_grads(grads, sean_fx["grad_D"], set())


def test_region_editing(nets, sean_fx, sean_inputs):
    """Swap / interpolate one class's style (the original's editing path, on item 0)."""
    seg, img = sean_inputs
    G = nets["G"].eval()
    set_noise(G, {k: v[:1] for k, v in sean_fx["ace_noise"].items()})
    edit = sean_fx["style_edit"]
    j, alpha = edit["edited_class"], edit["alpha"]
    with torch.no_grad():
        style = G.encode_style(img, seg)
        swapped = style[:1].clone()
        swapped[0, j] = style[1, j]
        assert rel(swapped[0], edit["codes_swap"]) <= OUT_TOL
        assert rel(G(seg[:1], swapped), edit["ui_swap"]) <= OUT_TOL
        mixed = style[:1].clone()
        mixed[0, j] = (1 - alpha) * style[0, j] + alpha * style[1, j]
        assert rel(mixed[0], edit["codes_interp"]) <= OUT_TOL
        assert rel(G(seg[:1], mixed), edit["ui_interp"]) <= OUT_TOL


def test_batched_style_layers_equal_19_modules(loaded, original_states, sean_fx, sean_inputs):
    """The stacked per-class layers + one gather give the numbers of the original's layout: 19 Linear
    modules, then a loop assigning relu(fc_mu_j(style_j)) to region j of every image, at every layer."""
    seg, _ = sean_inputs
    style = sean_fx["style_matrix"]
    theirs = original_states["G"]
    checked = 0
    for name, ace in loaded["G"].named_modules():
        if not (isinstance(ace, ACE) and ace.use_style):
            continue
        for size in ((2, 4), (8, 16), (32, 64)):
            s = F.interpolate(seg, size=size, mode="nearest")
            prefix = name.replace(".norm_", ".ace_")
            layers = []
            for j in range(19):
                lin = nn.Linear(512, 512)
                lin.load_state_dict({w: theirs[f"{prefix}.fc_mu{j}.{w}"] for w in ("weight", "bias")})
                layers.append(lin)
            with torch.no_grad():
                ref = torch.zeros(2, 512, *size)
                for b in range(2):
                    for j in range(10):
                        region = s[b, j].bool()
                        if region.any():
                            ref[b][:, region] = F.relu(layers[j](style[b, j]))[:, None]
                ours = broadcast_regions(F.relu(ace.fc_mu(style)), s)
            assert (ours - ref).abs().max() <= 1e-6 * ref.abs().max(), (name, size)
            checked += 1
        break  # one layer at three sizes: every layer holds the same construction
    assert checked == 3
