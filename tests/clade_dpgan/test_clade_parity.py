"""condgen's CLADE and CLADE-ICPE against the original (tzt101/CLADE 1ffd19d) on its tiny configurations.

The original state dicts (parameters from the recipe, buffers stored) load strictly through
`condgen.convert.load_official('clade', flags)`; the ICPE map is computed by condgen (bitwise equal to the
original's, edge cases included); G's outputs in eval and train mode, its BN statistics after a train
forward, D's logits, every loss of one G step and one D step of `Pix2PixHDObjective` and their gradients
match within the tolerances the fixture README suggests (section 8).
"""

import copy
import hashlib
import statistics

import pytest
import torch

from condgen.convert.keys import rename_official
from condgen.convert.official import load_official
from condgen.losses.perceptual import VGGLoss
from condgen.networks.discriminator import discriminate
from condgen.objectives.base import total
from condgen.objectives.pix2pixhd import Pix2PixHDObjective
from condgen.ops.label_conv import use_label_sparse
from condgen.ops.positional import intra_class_positions
from tests.clade_dpgan.conftest import grad_errors, load_fixture, rel, state
from tests.fixtures.recipe import build_state_dict

OUT_TOL, STATE_TOL, LOSS_RTOL = 1e-4, 1e-5, 1e-5
CONFIGS = ("clade", "clade_icpe")


@pytest.fixture(scope="module")
def fx() -> dict:
    return load_fixture("clade/clade_compact.pt")


def seg_of(cfg: dict) -> torch.Tensor:
    """The original's input_semantics: one-hot at the label value (+ the edge map as the last channel)."""
    label = cfg["label"].long()
    onehot = torch.zeros(label.shape[0], 13, *label.shape[-2:]).scatter_(1, label, 1.0)
    if "ade20k" not in cfg["argv"]:  # COCO: instance edges on (ADE20K: off), as the original defaults
        onehot = torch.cat([onehot, cfg["instance_edges"].float()], 1)
    return onehot


_LOADED: dict = {}


def fresh(fx: dict, name: str) -> dict:
    """Freshly loaded G, D (deep copies of one strict load) for config `name`."""
    if name not in _LOADED:
        cfg = fx["configs"][name]
        _LOADED[name] = load_official("clade", cfg["argv"], G=state(cfg["G"]), D=state(cfg["D"]))
    return {k: copy.deepcopy(v) for k, v in _LOADED[name].items()}


def test_icpe_map_is_the_originals_bitwise(fx):
    for case, ref in fx["icpe_cases"].items():
        ids = ref["label"][None]
        assert torch.equal(intra_class_positions(ids)[0], ref["dist_norm"]), case
        assert torch.equal(intra_class_positions(ids, normalise=False)[0], ref["dist_no_norm"]), case
    cfg = fx["configs"]["clade_icpe"]
    dist = intra_class_positions(cfg["label"][:, 0].long())
    assert hashlib.sha256(dist.numpy().astype("<f4").tobytes()).hexdigest() == cfg["dist_sha256"]


@pytest.mark.parametrize("name", CONFIGS)
@pytest.mark.parametrize("sparse", ["auto", "off"])
@torch.no_grad()
def test_generator_eval_and_train(fx, name, sparse):
    cfg = fx["configs"][name]
    seg = seg_of(cfg)
    with use_label_sparse(sparse):
        G = fresh(fx, name)["G"].eval()
        assert rel(G(seg), cfg["fake_eval"]) <= OUT_TOL
        G = fresh(fx, name)["G"].train()
        assert rel(G(seg), cfg["fake_train"]) <= OUT_TOL
    buffers = rename_official(cfg["G_buffers_after_train_forward"])
    ours = G.state_dict()
    for k, v in buffers.items():
        if "running_" in k:
            assert (ours[k] - v).abs().max() <= STATE_TOL * v.abs().max().clamp_min(1e-6), k


@pytest.mark.parametrize("name", CONFIGS)
def test_training_step_losses_and_gradients(fx, name):
    cfg = fx["configs"][name]
    seg, real = seg_of(cfg), cfg["image"]
    vgg = VGGLoss(random_init=True)
    weights = build_state_dict(cfg["VGG"]["recipe"], {})
    vgg.vgg.features.load_state_dict({k.split(".", 2)[2]: v for k, v in weights.items()})
    objective = Pix2PixHDObjective(lambda_feat=10.0, lambda_vgg=10.0, vgg_loss=lambda: vgg)

    nets = fresh(fx, name)
    G, D = nets["G"].train(), nets["D"].train()
    losses = objective.generator_losses(G, D, None, seg, real)
    ref = cfg["step_G"]["losses"]
    for ours, theirs in (("G_GAN", "GAN"), ("G_feat", "GAN_Feat"), ("G_VGG", "VGG")):
        assert abs(losses[ours].item() - ref[theirs]) <= LOSS_RTOL * abs(ref[theirs]), ours
    total(losses).backward()
    errors = grad_errors(G, {}, cfg["grad_G"], cfg["grad_G_stride"], cfg["grad_G_rms"],
                         cfg["grad_G_roundoff_only"], roundoff_tol=1e-5)
    assert max(errors.values()) <= 0.1 and statistics.median(errors.values()) <= 5e-3, errors

    nets = fresh(fx, name)
    G, D = nets["G"].train(), nets["D"].train()
    losses = objective.discriminator_losses(G, D, None, seg, real)
    ref = cfg["step_D"]["losses"]
    for ours, theirs in (("D_fake", "D_Fake"), ("D_real", "D_real")):
        assert abs(losses[ours].item() - ref[theirs]) <= LOSS_RTOL * abs(ref[theirs]), ours
    total(losses).backward()
    errors = grad_errors(D, {}, cfg["grad_D"], cfg["grad_D_stride"], cfg["grad_D_rms"],
                         cfg["grad_D_roundoff_only"], roundoff_tol=1e-5)
    assert max(errors.values()) <= 0.1 and statistics.median(errors.values()) <= 5e-3, errors


@torch.no_grad()
def test_discriminator_logits(fx):
    cfg = fx["configs"]["clade"]
    nets = fresh(fx, "clade")
    seg = seg_of(cfg)
    fake, real = discriminate(nets["D"].train(), cfg["fake_train"], cfg["image"], seg)
    for ours, ref in ((fake, cfg["d_train_logits"]["fake"]), (real, cfg["d_train_logits"]["real"])):
        for a, b in zip(ours.logits, ref, strict=True):
            assert rel(a, b) <= OUT_TOL
