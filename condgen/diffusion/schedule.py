"""Noise schedules and respacing (DDPM, Ho et al. 2020; improved DDPM, Nichol & Dhariwal 2021, Sec. 3.2, 4).

Everything is float64 numpy, computed in the order SDM's code computes it, so the arrays are bitwise the same:
a schedule is always rebuilt from the kept cumulative products, even when every step is kept (that changes
the linear betas by <= 1.7e-16). `Schedule.respaced("ddim25")` keeps every 40th of 1000 steps; "50" keeps 50
steps spread evenly by an accumulated float stride (0, 20, 41, 61, ...); "10,15" splits the steps into two
equal sections first. The model is always called with the kept original index (`timestep_map`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

MAX_BETA = 0.999  # improved DDPM's clip of the cosine betas


def named_betas(name: str, num_steps: int) -> np.ndarray:
    """`linear`: 1e-4 .. 0.02 scaled by 1000 / T (DDPM); `cosine`: from alpha_bar = cos^2((t + 0.008) / 1.008
    pi / 2), betas clipped at 0.999 (improved DDPM)."""
    if name == "linear":
        scale = 1000 / num_steps
        return np.linspace(scale * 0.0001, scale * 0.02, num_steps, dtype=np.float64)
    if name == "cosine":

        def alpha_bar(t: float) -> float:
            return math.cos((t + 0.008) / 1.008 * math.pi / 2) ** 2

        return np.array(
            [
                min(1 - alpha_bar((i + 1) / num_steps) / alpha_bar(i / num_steps), MAX_BETA)
                for i in range(num_steps)
            ],
            dtype=np.float64,
        )
    raise ValueError(f"unknown noise schedule {name!r}; choose 'linear' or 'cosine'")


def space_timesteps(num_steps: int, spacing: str | int) -> list[int]:
    """The original step indices a respacing keeps: "" (all), "N", "ddimN" or "N1,N2,..." (sections)."""
    spacing = str(spacing).strip()
    if spacing == "":
        return list(range(num_steps))
    if spacing.startswith("ddim"):
        want = int(spacing[len("ddim") :])
        for stride in range(1, num_steps):
            if len(range(0, num_steps, stride)) == want:
                return list(range(0, num_steps, stride))
        raise ValueError(
            f"respacing {spacing!r}: no integer stride gives exactly {want} of {num_steps} steps; "
            "use a plain count such as '25'"
        )
    try:
        counts = [int(c) for c in spacing.split(",")]
    except ValueError:
        raise ValueError(f"respacing {spacing!r}: expected '', 'N', 'ddimN' or 'N1,N2,...'") from None
    per, extra = divmod(num_steps, len(counts))
    kept, start = [], 0
    for i, count in enumerate(counts):
        size = per + (1 if i < extra else 0)
        if not 1 <= count <= size:
            raise ValueError(f"respacing {spacing!r}: cannot keep {count} of a section of {size} steps")
        stride = 1 if count <= 1 else (size - 1) / (count - 1)
        cur = 0.0
        for _ in range(count):  # the stride is accumulated, not multiplied (the original's rounding)
            kept.append(start + round(cur))
            cur += stride
        start += size
    return kept


@dataclass
class Schedule:
    """The float64 coefficient arrays of one (possibly respaced) process; `timestep_map[i]` is the original
    index of step i, which the model is called with."""

    betas: np.ndarray
    timestep_map: np.ndarray = field(default=None)  # type: ignore[assignment]

    def __post_init__(self) -> None:
        b = np.asarray(self.betas, dtype=np.float64)
        if b.ndim != 1 or not ((b > 0) & (b <= 1)).all():
            raise ValueError("betas must be a 1-D array in (0, 1]")
        self.betas = b
        self.num_timesteps = T = len(b)
        if self.timestep_map is None:
            self.timestep_map = np.arange(T)
        alphas = 1.0 - b
        ac = self.alphas_cumprod = np.cumprod(alphas, axis=0)
        self.alphas_cumprod_prev = np.append(1.0, ac[:-1])
        self.alphas_cumprod_next = np.append(ac[1:], 0.0)
        self.sqrt_alphas_cumprod = np.sqrt(ac)
        self.sqrt_one_minus_alphas_cumprod = np.sqrt(1.0 - ac)
        self.log_one_minus_alphas_cumprod = np.log(1.0 - ac)
        self.sqrt_recip_alphas_cumprod = np.sqrt(1.0 / ac)
        self.sqrt_recipm1_alphas_cumprod = np.sqrt(1.0 / ac - 1)
        self.posterior_variance = b * (1.0 - self.alphas_cumprod_prev) / (1.0 - ac)
        # log of the posterior variance, whose entry 0 is 0: clipped by taking entry 1's value there
        self.posterior_log_variance_clipped = np.log(
            np.append(self.posterior_variance[1], self.posterior_variance[1:])
        )
        self.posterior_mean_coef1 = b * np.sqrt(self.alphas_cumprod_prev) / (1.0 - ac)
        self.posterior_mean_coef2 = (1.0 - self.alphas_cumprod_prev) * np.sqrt(alphas) / (1.0 - ac)
        self.log_betas = np.log(b)

    @classmethod
    def make(cls, name: str = "linear", num_steps: int = 1000, spacing: str | int = "") -> Schedule:
        """The process the original builds: `named_betas`, then respaced (always, "" keeps every step)."""
        return cls(named_betas(name, num_steps)).respaced(spacing)

    def respaced(self, spacing: str | int) -> Schedule:
        """A process over the kept steps: betas 1 - alpha_bar_i / alpha_bar_(previous kept)."""
        keep = set(space_timesteps(self.num_timesteps, spacing))
        betas, kept, last = [], [], 1.0
        for i, ac in enumerate(self.alphas_cumprod):
            if i in keep:
                betas.append(1 - ac / last)
                last = ac
                kept.append(int(self.timestep_map[i]))
        return Schedule(np.array(betas), np.array(kept, dtype=np.int64))
