"""SDM's training objective (Wang et al. 2022, Sec. 3.3): the hybrid diffusion loss, with label drop."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from condgen.diffusion.gaussian import GaussianDiffusion
from condgen.diffusion.sampling import SamplerSettings, sample_images, training_process
from condgen.objectives.base import Networks, Objective, Update
from condgen.registry import register


def drop_condition(y: Tensor, rate: float, *, draws: Tensor | None = None) -> Tensor:
    """Classifier-free guidance's training switch: each sample's whole condition (one-hot and edges) becomes
    the null condition (zeros) when its uniform draw is <= `rate` (keep = draw > rate, as the original).
    `draws`: the (b,) uniform numbers (default: drawn here); rate 0 keeps everything."""
    if rate <= 0:
        return y
    u = torch.rand(y.shape[0], device=y.device) if draws is None else draws.to(y.device)
    keep = (u > rate).to(y.dtype).reshape(-1, *([1] * (y.ndim - 1)))
    return y * keep


@register("objective")
class SDMObjective(Objective):
    """SDM's loss (Sec. 3.3): one update of the denoiser (G) by the hybrid loss, no discriminator.

    Per sample: t uniform in [0, T), noise ~ N(0, I), x_t = q_sample(real, t, noise); terms `mse` (of the
    predicted noise) and `vb` (the variational bound, training the variance only), batch means, weight 1.
    The condition of each sample becomes the null condition (zeros) with probability `drop_rate`
    (classifier-free guidance; the paper fine-tunes with 0.2). The process is G's own
    (`SDMUNet.noise_schedule`, `.diffusion_steps`).

    Args:
        drop_rate: probability of training a sample unconditionally (0 in base training, 0.2 to fine-tune).
        sample_steps, sample_method, sample_guidance: the sampler of the training sample grids (cheap DDIM).
    """

    networks = ("G",)
    loss_names = ("mse", "vb")

    def __init__(self, *, drop_rate: float = 0.0, sample_steps: int = 25, sample_method: str = "ddim",
                 sample_guidance: float = 1.0) -> None:
        super().__init__()
        if not 0 <= drop_rate < 1:
            raise ValueError(f"SDMObjective.drop_rate = {drop_rate!r} must be in [0, 1) (fine-tuning: 0.2)")
        self.drop_rate = drop_rate
        self.sampler = SamplerSettings(steps=sample_steps, method=sample_method, guidance=sample_guidance)
        self._process: GaussianDiffusion | None = None

    def process(self, G: nn.Module) -> GaussianDiffusion:
        """G's diffusion process (built on first use)."""
        if self._process is None:
            self._process = training_process(G)
        return self._process

    def updates(self) -> tuple[Update, ...]:
        return (Update("G", ("G",), self.losses),)

    def losses(self, nets: Networks, seg: Tensor, real: Tensor) -> dict[str, Tensor]:
        b = real.shape[0]
        diffusion = self.process(nets["G"])
        t = torch.randint(0, diffusion.num_timesteps, (b,), device=real.device)
        noise = torch.randn_like(real)
        y = drop_condition(seg, self.drop_rate)
        terms = diffusion.training_losses(nets["G"], real, t, y, noise)
        return {"mse": terms["mse"].mean(), "vb": terms["vb"].mean()}

    @torch.no_grad()
    def sample(self, G: nn.Module, seg: Tensor) -> Tensor:
        shape = (seg.shape[0], 3, *seg.shape[-2:])
        process = self.process(G)
        settings = SamplerSettings(min(self.sampler.steps, process.num_timesteps), self.sampler.method,
                                   self.sampler.guidance)
        return sample_images(G, seg, lambda: torch.randn(shape, device=seg.device), settings, trained=process)
