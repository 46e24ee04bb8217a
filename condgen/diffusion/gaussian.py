"""A Gaussian diffusion with learned variance (improved DDPM, Nichol & Dhariwal 2021) as SDM trains it.

- `q_sample`: x_t = sqrt(alpha_bar_t) x_0 + sqrt(1 - alpha_bar_t) noise.
- `training_losses`: the hybrid loss L_simple + L_vlb (improved DDPM Sec. 3.1): the mean squared error of the
  predicted noise, plus the variational bound term in bits per dimension, whose model mean uses the predicted
  noise *detached*, so the bound trains only the variance (KL to the true posterior for t > 0, the
  discretised-Gaussian decoder NLL for t = 0).
- `p_mean_variance`: from the model output (epsilon | v) to the reverse step's mean and (log) variance:
  log sigma^2 = frac log beta_t + (1 - frac) log beta~_t with frac = (v + 1) / 2; x_0 predicted from
  epsilon and clamped to [-1, 1] when sampling.
- `p_sample` (DDPM) and `ddim_sample` (DDIM, Song et al. 2021, eta = 0 deterministic), one step each;
  `sample` runs the loop from pure noise, with classifier-free guidance (`guided_output`).

Conventions of SDM's code kept for exactness: a float64 coefficient is looked up, cast to float32, and
multiplied in float32; guidance applies only for scales > 1 (1 is plain conditional sampling) and only to the
noise channels, the variance coming from the conditional output; the null condition is all zeros.
Timestep indices are those of the (respaced) schedule; the model is called with `timestep_map[t]`.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch
from torch import Tensor

from condgen.diffusion.schedule import Schedule

Model = Callable[[Tensor, Tensor, Tensor], Tensor]  # model(x_t, original timesteps, y) -> (b, 2C, H, W)
METHODS = ("ddpm", "ddim")


def guided_output(model: Model, x: Tensor, t: Tensor, y: Tensor, scale: float = 1.0) -> Tensor:
    """The model output with classifier-free guidance (SDM, Sec. 3.3): for `scale > 1` a second call with the
    null condition (zeros) and eps = eps_null + scale (eps_cond - eps_null) on the first x.shape[1] channels;
    the variance channels stay the conditional call's. `scale <= 1`: one conditional call, no guidance."""
    out = model(x, t, y)
    if scale > 1:
        null = model(x, t, torch.zeros_like(y))
        c = x.shape[1]
        eps = null[:, :c] + scale * (out[:, :c] - null[:, :c])
        out = torch.cat([eps, out[:, c:]], dim=1)
    return out


def normal_kl(mean1: Tensor, logvar1: Tensor, mean2: Tensor, logvar2: Tensor) -> Tensor:
    """KL(N(mean1, e^logvar1) || N(mean2, e^logvar2)), elementwise."""
    return 0.5 * (
        -1.0 + logvar2 - logvar1 + torch.exp(logvar1 - logvar2) + (mean1 - mean2) ** 2 * torch.exp(-logvar2)
    )


def _approx_std_normal_cdf(x: Tensor) -> Tensor:
    """The tanh approximation of the standard normal CDF (as the original, for exactness)."""
    return 0.5 * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x.pow(3))))


def discretized_gaussian_log_likelihood(x: Tensor, means: Tensor, log_scales: Tensor) -> Tensor:
    """log P(x) of 8-bit images in [-1, 1] under a Gaussian integrated over each pixel's bin (width 2/255);
    the edge bins reach to -inf / +inf."""
    centered = x - means
    inv_std = torch.exp(-log_scales)
    cdf_plus = _approx_std_normal_cdf(inv_std * (centered + 1.0 / 255.0))
    cdf_min = _approx_std_normal_cdf(inv_std * (centered - 1.0 / 255.0))
    log_cdf_plus = torch.log(cdf_plus.clamp(min=1e-12))
    log_one_minus_cdf_min = torch.log((1.0 - cdf_min).clamp(min=1e-12))
    log_delta = torch.log((cdf_plus - cdf_min).clamp(min=1e-12))
    return torch.where(x < -0.999, log_cdf_plus, torch.where(x > 0.999, log_one_minus_cdf_min, log_delta))


def _nonzero(t: Tensor, like: Tensor) -> Tensor:
    """1 where t > 0 (the last step adds no noise), shaped to broadcast over `like`."""
    return (t != 0).float().reshape(-1, *([1] * (like.ndim - 1)))


def mean_flat(x: Tensor) -> Tensor:
    return x.mean(dim=tuple(range(1, x.ndim)))


class GaussianDiffusion:
    """The diffusion process of one `Schedule` (respaced or not): training loss and reverse steps."""

    def __init__(self, schedule: Schedule) -> None:
        self.schedule = schedule
        self.num_timesteps = schedule.num_timesteps
        self._tables: dict[tuple[str, torch.device], Tensor] = {}

    @classmethod
    def make(cls, name: str = "linear", num_steps: int = 1000, spacing: str | int = "") -> GaussianDiffusion:
        return cls(Schedule.make(name, num_steps, spacing))

    def respaced(self, spacing: str | int) -> GaussianDiffusion:
        """The same process sampled over fewer steps ("25", "ddim25", ...)."""
        return GaussianDiffusion(self.schedule.respaced(spacing))

    # ------------------------------------------------------------------------------------------ coefficients
    def _coef(self, name: str, t: Tensor, like: Tensor) -> Tensor:
        """The float64 entry for each sample's t, cast to float32, shaped to broadcast over `like`."""
        key = (name, t.device)
        if key not in self._tables:
            self._tables[key] = torch.from_numpy(np.ascontiguousarray(getattr(self.schedule, name))).to(
                t.device
            )
        return self._tables[key][t].float().reshape(-1, *([1] * (like.ndim - 1)))

    def model_timesteps(self, t: Tensor) -> Tensor:
        """The original step indices the model is called with."""
        return self._coef_int("timestep_map", t)

    def _coef_int(self, name: str, t: Tensor) -> Tensor:
        key = (name, t.device)
        if key not in self._tables:
            self._tables[key] = torch.as_tensor(
                getattr(self.schedule, name), dtype=torch.long, device=t.device
            )
        return self._tables[key][t]

    # ------------------------------------------------------------------------------------ forward process
    def q_sample(self, x0: Tensor, t: Tensor, noise: Tensor) -> Tensor:
        return (
            self._coef("sqrt_alphas_cumprod", t, x0) * x0
            + self._coef("sqrt_one_minus_alphas_cumprod", t, x0) * noise
        )

    def q_posterior(self, x0: Tensor, x_t: Tensor, t: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Mean, variance and clipped log variance of q(x_{t-1} | x_t, x_0)."""
        mean = (
            self._coef("posterior_mean_coef1", t, x_t) * x0 + self._coef("posterior_mean_coef2", t, x_t) * x_t
        )
        return (
            mean,
            self._coef("posterior_variance", t, x_t).expand_as(x_t),
            self._coef("posterior_log_variance_clipped", t, x_t).expand_as(x_t),
        )

    # ------------------------------------------------------------------------------------ reverse process
    def p_mean_variance(
        self, out: Tensor, x_t: Tensor, t: Tensor, *, clip_denoised: bool = True
    ) -> dict[str, Tensor]:
        """Mean, variance, log variance and predicted x_0 of p(x_{t-1} | x_t) from the output (eps | v)."""
        c = x_t.shape[1]
        if out.shape[1] != 2 * c:
            raise ValueError(
                f"the model output has {out.shape[1]} channels; learned variance needs {2 * c} "
                "(noise | variance value): SDMUNet.learn_sigma = True"
            )
        eps, v = out[:, :c], out[:, c:]
        min_log = self._coef("posterior_log_variance_clipped", t, x_t)
        max_log = self._coef("log_betas", t, x_t)
        frac = (v + 1) / 2
        log_variance = frac * max_log + (1 - frac) * min_log
        pred_xstart = (
            self._coef("sqrt_recip_alphas_cumprod", t, x_t) * x_t
            - self._coef("sqrt_recipm1_alphas_cumprod", t, x_t) * eps
        )
        if clip_denoised:
            pred_xstart = pred_xstart.clamp(-1, 1)
        mean, _, _ = self.q_posterior(pred_xstart, x_t, t)
        return {
            "mean": mean,
            "variance": torch.exp(log_variance),
            "log_variance": log_variance,
            "pred_xstart": pred_xstart,
        }

    def predict(self, model: Model, x_t: Tensor, t: Tensor, y: Tensor, *, guidance: float = 1.0,
                clip_denoised: bool = True) -> dict[str, Tensor]:
        """`p_mean_variance` of the (guided) model output at x_t, and the noise it implies (`eps`)."""
        out = guided_output(model, x_t, self.model_timesteps(t), y, guidance)
        step = self.p_mean_variance(out, x_t, t, clip_denoised=clip_denoised)
        step["eps"] = ((self._coef("sqrt_recip_alphas_cumprod", t, x_t) * x_t - step["pred_xstart"])
                       / self._coef("sqrt_recipm1_alphas_cumprod", t, x_t))
        return step

    def p_sample(self, model: Model, x_t: Tensor, t: Tensor, y: Tensor, noise: Tensor, *,
                 guidance: float = 1.0, clip_denoised: bool = True) -> dict[str, Tensor]:
        """One DDPM step: `sample` = mean + [t > 0] sigma noise (and everything `predict` returns)."""
        step = self.predict(model, x_t, t, y, guidance=guidance, clip_denoised=clip_denoised)
        step["sample"] = step["mean"] + _nonzero(t, x_t) * torch.exp(0.5 * step["log_variance"]) * noise
        return step

    def ddim_sample(self, model: Model, x_t: Tensor, t: Tensor, y: Tensor, noise: Tensor, *,
                    guidance: float = 1.0, eta: float = 0.0, clip_denoised: bool = True) -> dict[str, Tensor]:
        """One DDIM step (eta 0: deterministic) from the same prediction of x_0 as `p_sample`."""
        step = self.predict(model, x_t, t, y, guidance=guidance, clip_denoised=clip_denoised)
        eps = step["eps"]
        a_bar, a_bar_prev = self._coef("alphas_cumprod", t, x_t), self._coef("alphas_cumprod_prev", t, x_t)
        sigma = eta * torch.sqrt((1 - a_bar_prev) / (1 - a_bar)) * torch.sqrt(1 - a_bar / a_bar_prev)
        mean = step["pred_xstart"] * torch.sqrt(a_bar_prev) + torch.sqrt(1 - a_bar_prev - sigma**2) * eps
        step["sample"] = mean + _nonzero(t, x_t) * sigma * noise
        return step

    @torch.no_grad()
    def sample(
        self,
        model: Model,
        y: Tensor,
        noise: Callable[[], Tensor],
        *,
        guidance: float = 1.0,
        method: str = "ddpm",
        eta: float = 0.0,
        progress: Callable | None = None,
    ) -> Tensor:
        """Images from the model: x_T = noise(), then every step of this schedule from T-1 down to 0.

        `noise()` returns one (b, C, H, W) standard-normal draw per call (the caller seeds it per image);
        `progress` wraps the step range (e.g. tqdm) for a progress bar.
        """
        if method not in METHODS:
            raise ValueError(f"unknown sampling method {method!r}; choose one of {', '.join(METHODS)}")
        step_fn = self.p_sample if method == "ddpm" else self.ddim_sample
        extra = {"eta": eta} if method == "ddim" else {}
        x = noise()
        steps = range(self.num_timesteps - 1, -1, -1)
        for i in progress(steps) if progress is not None else steps:
            t = torch.full((x.shape[0],), i, device=x.device, dtype=torch.long)
            step_noise = noise() if (method == "ddpm" or eta > 0) and i > 0 else torch.zeros_like(x)
            x = step_fn(model, x, t, y, step_noise, guidance=guidance, **extra)["sample"]
        return x

    # ------------------------------------------------------------------------------------------ training
    def vb_terms(self, out: Tensor, x0: Tensor, x_t: Tensor, t: Tensor) -> dict[str, Tensor]:
        """The variational bound term (bits per dimension) of each sample for the model output `out`."""
        true_mean, _, true_log_variance = self.q_posterior(x0, x_t, t)
        p = self.p_mean_variance(out, x_t, t, clip_denoised=False)
        kl = mean_flat(normal_kl(true_mean, true_log_variance, p["mean"], p["log_variance"])) / math.log(2.0)
        nll = -discretized_gaussian_log_likelihood(x0, p["mean"], 0.5 * p["log_variance"])
        nll = mean_flat(nll) / math.log(2.0)
        return {
            "output": torch.where(t == 0, nll, kl),
            "true_mean": true_mean,
            "true_log_variance": true_log_variance,
            **{f"model_{k}": p[k] for k in ("mean", "log_variance")},
            "pred_xstart": p["pred_xstart"],
        }

    def training_losses(
        self, model: Model, x0: Tensor, t: Tensor, y: Tensor, noise: Tensor
    ) -> dict[str, Tensor]:
        """Per-sample `mse` (of the noise), `vb` (bound term for the variance only) and `loss` = mse + vb."""
        x_t = self.q_sample(x0, t, noise)
        out = model(x_t, self.model_timesteps(t), y).float()
        c = x0.shape[1]
        frozen = torch.cat([out[:, :c].detach(), out[:, c:]], dim=1)  # the bound trains the variance only
        vb = self.vb_terms(frozen, x0, x_t, t)["output"]
        mse = mean_flat((noise - out[:, :c]) ** 2)
        return {"mse": mse, "vb": vb, "loss": mse + vb}
