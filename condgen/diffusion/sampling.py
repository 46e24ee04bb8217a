"""How a denoiser is sampled: `SamplerSettings` (steps, method, guidance), the process a model was trained on,
and per-image seeded noise.

A model states its own process and default sampler as attributes (`SDMUNet.noise_schedule`,
`.diffusion_steps`, `.sample_steps`, `.sample_method`, `.guidance`, saved in the run's config), so a loaded
model samples as trained; `SamplerSettings.of(model, steps=...)` overrides them per call.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from condgen.diffusion.gaussian import METHODS, GaussianDiffusion, Model
from condgen.diffusion.schedule import space_timesteps


def _unwrapped(model: Any) -> Any:
    from condgen.networks.discriminator import unwrap

    return unwrap(model)


def training_process(model: Any) -> GaussianDiffusion:
    """The process a denoiser was trained on, from its attributes (default: linear betas, 1000 steps)."""
    m = _unwrapped(model)
    return GaussianDiffusion.make(getattr(m, "noise_schedule", "linear"), getattr(m, "diffusion_steps", 1000))


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

    @classmethod
    def of(cls, model: Any, *, steps: int | None = None, method: str | None = None,
           guidance: float | None = None, eta: float = 0.0) -> SamplerSettings:
        """A model's own sampler (its `sample_steps`, `sample_method`, `guidance`), with overrides."""
        m = _unwrapped(model)
        return cls(steps=steps if steps is not None else getattr(m, "sample_steps", cls.steps),
                   method=method if method is not None else getattr(m, "sample_method", cls.method),
                   guidance=guidance if guidance is not None else getattr(m, "guidance", cls.guidance),
                   eta=eta)

    def record(self) -> dict[str, Any]:
        """The protocol fields of this sampler (what changes the images)."""
        return {"steps": self.steps, "method": self.method, "guidance": self.guidance, "eta": self.eta}

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
    process = settings.process(trained if trained is not None else training_process(model))
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
