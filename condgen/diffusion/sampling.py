"""The diffusion process a model was trained with and how it is sampled, as gin settings saved with a run.

`diffusion.noise_schedule` / `diffusion.steps` describe the training process (saved in the run's config.gin,
so a loaded model samples with the schedule it learned); `diffusion_sampling.*` the default sampler (steps,
method, guidance scale), which callers override per call (`condgen synthesize --steps 25`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import gin
import torch
from torch import Tensor

from condgen.diffusion.gaussian import METHODS, GaussianDiffusion, Model
from condgen.diffusion.schedule import space_timesteps


@gin.configurable("diffusion")
def training_process(noise_schedule: str = "linear", steps: int = 1000) -> GaussianDiffusion:
    """The process the denoiser is trained on (SDM: linear betas, 1000 steps)."""
    return GaussianDiffusion.make(noise_schedule, steps)


@gin.configurable("diffusion_sampling")
@dataclass(frozen=True)
class SamplerSettings:
    """How images are drawn from a trained denoiser.

    Args:
        steps: reverse steps (the paper: all 1000 DDPM steps); fewer steps respace the process (DDIM:
            every (T / steps)-th step when it divides, else evenly spread).
        method: 'ddpm' (stochastic, the paper's) or 'ddim' (deterministic with eta 0; good at 25-50 steps).
        guidance: classifier-free guidance scale s (the paper: 1.5, for a model fine-tuned with label drop);
            <= 1 is plain conditional sampling (one network call per step instead of two).
        eta: DDIM's noise scale (0: deterministic).
    """

    steps: int = 1000
    method: str = "ddpm"
    guidance: float = 1.0
    eta: float = 0.0

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(
                f"diffusion_sampling.method = {self.method!r}; choose one of {', '.join(METHODS)}"
            )
        if isinstance(self.steps, bool) or not isinstance(self.steps, int) or self.steps < 1:
            raise ValueError(f"sampling steps = {self.steps!r} must be a positive whole number, e.g. 25")

    def spacing(self, num_timesteps: int) -> str:
        """The respacing string for `steps` of a process of `num_timesteps`."""
        if self.steps > num_timesteps:
            raise ValueError(
                f"sampling steps = {self.steps} exceeds the {num_timesteps} steps the model was "
                "trained with; choose at most that many"
            )
        if self.method == "ddim" and num_timesteps % self.steps == 0:
            return f"ddim{self.steps}"
        return str(self.steps)

    def process(self, trained: GaussianDiffusion) -> GaussianDiffusion:
        return trained.respaced(self.spacing(trained.num_timesteps))


def sample_images(
    model: Model,
    y: Tensor,
    noise: Callable[[], Tensor],
    settings: SamplerSettings,
    *,
    trained: GaussianDiffusion | None = None,
    progress: Callable | None = None,
) -> Tensor:
    """Images in [-1, 1] for label maps y: the reverse process of `settings` from x_T = noise()."""
    process = settings.process(trained if trained is not None else training_process())
    return process.sample(
        model,
        y,
        noise,
        guidance=settings.guidance,
        method=settings.method,
        eta=settings.eta,
        progress=progress,
    ).clamp(-1, 1)


def kept_steps(num_timesteps: int, settings: SamplerSettings) -> list[int]:
    """The original indices a sampler visits (for reports)."""
    return space_timesteps(num_timesteps, settings.spacing(num_timesteps))


def per_image_noise(shape: tuple[int, ...], seeds: list[int], device: torch.device) -> Callable[[], Tensor]:
    """A noise source drawing each image's noise from its own generator (images never depend on the batch)."""
    gens = [torch.Generator().manual_seed(s) for s in seeds]

    def draw() -> Tensor:
        return torch.stack([torch.randn(shape, generator=g) for g in gens]).to(device)

    return draw
