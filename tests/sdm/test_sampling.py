"""The samplers: respaced DDIM / DDPM loops with guidance, per-image seeded noise, settings checks."""

import pytest
import torch

from condgen.diffusion import GaussianDiffusion
from condgen.diffusion.sampling import SamplerSettings, kept_steps, per_image_noise, sample_images
from tests.sdm.test_unet_parity import condition


def test_settings_pick_the_respacing():
    assert SamplerSettings(steps=25, method="ddim").spacing(1000) == "ddim25"  # every 40th step
    assert SamplerSettings(steps=30, method="ddim").spacing(1000) == "30"  # no integer stride: spread evenly
    assert kept_steps(1000, SamplerSettings(steps=25, method="ddim"))[:3] == [0, 40, 80]
    with pytest.raises(ValueError, match="exceeds the 1000 steps"):
        SamplerSettings(steps=2000).spacing(1000)
    with pytest.raises(ValueError, match="choose one of ddpm, ddim"):
        SamplerSettings(method="euler")


def test_ddim_with_guidance_is_deterministic_per_image(sdm_fx, unet):
    """Two UNet calls per step at s > 1, timesteps visited from the last kept one down to 0; each image's
    result depends only on its own seed (not on the batch it is in); DDIM with eta 0 adds no noise."""
    y = condition(sdm_fx)[:2, :, :16, :16]
    calls = []

    def model(x, t, yy):
        calls.append((int(t[0]), bool((yy == 0).all())))
        return unet(x, t, yy)

    settings = SamplerSettings(steps=2, method="ddim", guidance=1.5)
    with torch.no_grad():
        both = sample_images(model, y, per_image_noise((3, 16, 16), [7, 8], y.device), settings)
        second = sample_images(unet, y[1:], per_image_noise((3, 16, 16), [8], y.device), settings)
    assert calls == [(500, False), (500, True), (0, False), (0, True)]
    assert both.shape == (2, 3, 16, 16) and both.abs().max() <= 1
    assert torch.allclose(both[1:], second, atol=1e-5)  # batch-independent (up to conv round-off)
    assert not torch.allclose(both[0], both[1])


def test_ddpm_step_noise_and_guidance_one(sdm_fx, unet):
    """DDPM draws fresh noise every step but the last; guidance 1 is one call per step."""
    y = condition(sdm_fx)[:1, :, :16, :16]
    draws = []
    base = per_image_noise((3, 16, 16), [0], y.device)

    def noise():
        draws.append(1)
        return base()

    calls = []
    process = GaussianDiffusion.make(spacing="3")
    with torch.no_grad():
        process.sample(lambda x, t, yy: calls.append(1) or unet(x, t, yy), y, noise, method="ddpm")
    assert len(draws) == 1 + 2 and len(calls) == 3  # x_T, then steps 2 and 1 (none at t = 0)
