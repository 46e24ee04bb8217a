"""Gaussian diffusion (DDPM / improved DDPM with learned variance, DDIM) for SDM: schedules, respacing, the
hybrid training loss, reverse steps with classifier-free guidance. Pure maths on tensors: the denoiser is any
callable `model(x_t, t, y)`, so this layer needs nothing but torch and numpy."""

from condgen.diffusion.gaussian import GaussianDiffusion, guided_output
from condgen.diffusion.schedule import Schedule, named_betas, space_timesteps

__all__ = ["GaussianDiffusion", "Schedule", "guided_output", "named_betas", "space_timesteps"]
