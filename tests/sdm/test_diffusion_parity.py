"""condgen.diffusion against the original SDM / guided-diffusion process (the tiny fixture, README sec. 5-8).

Schedules (linear betas, the rebuilt 1000-step process, respacings "25", "50", "100", "ddim25", "ddim50")
are bitwise in float64; the hybrid loss's two terms within 2e-6, the VB details within 1e-4 of their std,
every parameter's gradient within 2e-3 of the full gradient's std (round-off-only ones within 1e-6), the
label-drop switch reproduces the original's dropped condition and loss, and one reverse step (full and
respaced "50", guidance 1 and 1.5) matches within 1e-3 with the original's model calls.
"""

import hashlib

import numpy as np
import pytest
import torch

from condgen.diffusion import GaussianDiffusion, Schedule, named_betas
from condgen.objectives.sdm import drop_condition
from tests.sdm.test_unet_parity import condition, rel

LOSS_TOL, GRAD_TOL, STEP_TOL = 2e-6, 2e-3, 1e-3  # README section 10
SPACINGS = {
    "default_T1000": "",
    "respaced_25": "25",
    "respaced_50": "50",
    "respaced_100": "100",
    "respaced_ddim25": "ddim25",
    "respaced_ddim50": "ddim50",
}


def digest(a) -> str:
    a = np.asarray(a)
    return hashlib.sha256(a.astype(a.dtype.newbyteorder("<")).tobytes()).hexdigest()


@pytest.mark.parametrize("name", sorted(SPACINGS))
def test_schedules_are_bitwise(sdm_fx, name):
    ref, ours = sdm_fx["schedules"][name], Schedule.make("linear", 1000, SPACINGS[name])
    assert ours.num_timesteps == ref["num_timesteps"]
    arrays = [k for k in ref if k != "num_timesteps"]
    assert len(arrays) == 14
    assert {k: digest(getattr(ours, k)) for k in arrays} == {k: ref[k] for k in arrays}


def test_linear_betas_and_spacing_arithmetic(sdm_fx):
    assert digest(named_betas("linear", 1000)) == sdm_fx["schedules"]["linspace_betas_T1000"]["betas"]
    assert Schedule.make(spacing="50").timestep_map[:5].tolist() == [0, 20, 41, 61, 82]
    cos = named_betas("cosine", 1000)
    assert cos.max() == 0.999 and 0 < cos[0] < 1e-4  # improved DDPM: clipped at the end, tiny at the start
    with pytest.raises(ValueError, match="ddim"):
        Schedule.make(spacing="ddim999")


@pytest.fixture(scope="module")
def losses(sdm_fx, unet):
    net = unet.train()  # dropout 0: the same numbers; gradients on
    net.zero_grad()
    diffusion = GaussianDiffusion.make()
    out = diffusion.training_losses(net, sdm_fx["x0"], sdm_fx["t_loss"], condition(sdm_fx), sdm_fx["noise"])
    out["loss"].mean().backward()
    grads = {k: p.grad.clone() for k, p in net.named_parameters()}
    net.zero_grad()
    net.eval()
    return out, grads


def test_loss_terms(sdm_fx, losses):
    out, _ = losses
    for k in ("mse", "vb", "loss"):
        assert (out[k] - sdm_fx["loss_terms"][k]).abs().max() < LOSS_TOL, k
    assert abs(out["loss"].mean().item() - sdm_fx["loss_terms"]["loss_mean"]) < LOSS_TOL


def test_vb_details(sdm_fx, unet):
    fx, diffusion = sdm_fx, GaussianDiffusion.make()
    x_t = diffusion.q_sample(fx["x0"], fx["t_loss"], fx["noise"])
    with torch.no_grad():
        vb = diffusion.vb_terms(unet(x_t, fx["t_loss"], condition(fx)), fx["x0"], x_t, fx["t_loss"])
    errors = {k: rel(vb[k], ref) for k, ref in fx["vb_detail"].items()}
    assert max(errors.values()) < 1e-4, errors


def test_gradients(sdm_fx, losses):
    _, grads = losses
    errors, roundoff = {}, {}
    for key, ref in sdm_fx["grad"].items():
        stride = sdm_fx["grad_stride"].get(key)
        ours = grads[key].flatten()[::stride] if stride else grads[key]
        diff = (ours.reshape(ref.shape) - ref).abs().max().item()
        if key in sdm_fx["grad_roundoff_only"]:
            roundoff[key] = diff
        else:
            errors[key] = diff / sdm_fx["grad_stats"][key]["std"]
    assert len(errors) + len(roundoff) == 296 and len(roundoff) == 6
    assert max(errors.values()) < GRAD_TOL, max(errors.items(), key=lambda kv: kv[1])
    assert max(roundoff.values()) < 1e-6


def test_label_drop_switch(sdm_fx, unet):
    """keep = (u > rate) per sample, y * keep: the stored draws drop sample 1, and only its loss changes."""
    fx = sdm_fx
    y = drop_condition(condition(fx), fx["drop_rate"], draws=fx["drop_uniform_draws"])
    assert hashlib.sha256(y.double().numpy().astype("<f8").tobytes()).hexdigest() == fx["y_dropped_digest"]
    with torch.no_grad():
        out = GaussianDiffusion.make().training_losses(unet, fx["x0"], fx["t_loss"], y, fx["noise"])
    assert (out["loss"] - fx["loss_terms_dropped"]["loss"]).abs().max() < LOSS_TOL
    assert drop_condition(condition(fx), 0.0) is not None  # rate 0 (base training): everything kept
    assert torch.equal(drop_condition(condition(fx), 0.0), condition(fx))


@pytest.mark.parametrize("key", ["T1000_s1.0", "T1000_s1.5", "R50_s1.0", "R50_s1.5"])
def test_reverse_step(sdm_fx, unet, key):
    """p_sample at guidance 1 (one call) and 1.5 (a second call with zeros; variance from the first)."""
    fx, ref = sdm_fx, sdm_fx["p_sample"][key]
    diffusion = GaussianDiffusion.make(spacing="50" if key.startswith("R50") else "")
    t = fx["t_sample_50"] if key.startswith("R50") else fx["t_sample"]
    calls = []

    def model(x, t_model, y):
        calls.append((t_model, bool((y == 0).all())))
        return unet(x, t_model, y)

    with torch.no_grad():
        step = diffusion.p_sample(
            model, fx["x_t_sample"], t, condition(fx), fx["noise_sample"], guidance=float(key.split("_s")[1])
        )
    assert len(calls) == ref["model_calls"] and torch.equal(calls[0][0], ref["t_model"])
    assert calls[-1][1] == ref["null_call_y_all_zero"]
    errors = {
        k: (step[k] - ref[k]).abs().max().item() for k in ("mean", "log_variance", "pred_xstart", "sample")
    }
    assert max(errors.values()) < STEP_TOL, errors
