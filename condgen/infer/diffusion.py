"""The diffusion latent kind: how `SynthesisPipeline`, `synthesize`, `eval` and the painter draw images from a
denoiser (`SDMUNet`, whose class names `latent_kind = "diffusion"`).

An image's starting noise and every step's noise come from its own generator, seeded by (seed, image index,
sample) as the GANs' latents, so images never depend on batch size or process count. `steps=` (the pipeline,
`synthesize --steps`, `eval --steps`) respaces the model's process; the method and guidance scale are the
model's own (`SDMUNet.sample_method`, `SDMUNet.guidance`) unless `sampler_overrides` says otherwise. Long
samplers show a tqdm bar (on a terminal).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from torch import Tensor

from condgen.diffusion.sampling import SamplerSettings, per_image_noise, sample_images
from condgen.infer.latents import Draw, LatentKind, _seed_of, register_latent_kind

PROGRESS_FROM = 100  # steps from which a progress bar is shown
_overrides: list[dict[str, Any]] = []


@contextlib.contextmanager
def sampler_overrides(**values: Any) -> Iterator[None]:
    """Inside the block, diffusion models sample with these `SamplerSettings` fields (None: the model's)."""
    _overrides.append({k: v for k, v in values.items() if v is not None})
    try:
        yield
    finally:
        _overrides.pop()


def settings_for(G: Any, steps: int | None = None) -> SamplerSettings:
    """The sampler a call uses: the model's own, the active overrides, then `steps`."""
    given = dict(_overrides[-1]) if _overrides else {}
    if steps is not None:
        given["steps"] = steps
    return SamplerSettings.of(G, **given)


def _progress(total: int):
    if total < PROGRESS_FROM:
        return None
    from tqdm.auto import tqdm

    return lambda steps: tqdm(steps, total=total, desc="sampling", unit="step", leave=False, disable=None)


def _diffusion(G: Any, seg: Tensor, d: Draw) -> Tensor:
    settings = settings_for(G, d.steps)
    seeds = [_seed_of(d.seed, i, d.sample) for i in d.indices]
    noise = per_image_noise((3, *seg.shape[-2:]), seeds, seg.device)
    return sample_images(G, seg, noise, settings, progress=_progress(settings.steps))


def _is_denoiser(G: Any) -> bool:
    return getattr(type(_unwrap(G)), "latent_kind", None) == "diffusion"


DIFFUSION = register_latent_kind(
    LatentKind("diffusion", "diffusion sampler (noise seeded per image)", _is_denoiser, _diffusion,
               frozenset({"steps"}))
)


def add_sampler_args(p: Any) -> None:
    """`--steps`, `--sampler`, `--guidance` on an argparse parser (diffusion models only)."""
    p.add_argument("--steps", type=int, help="diffusion models: sampling steps (default: the model's; 25-50 "
                   "with --sampler ddim are fast)")
    p.add_argument("--sampler", choices=("ddpm", "ddim"), help="diffusion models: the sampler (default: the "
                   "model's; SDM's README: ddpm)")
    p.add_argument("--guidance", type=float, help="diffusion models: classifier-free guidance scale s (<= 1: "
                   "none; SDM: 1.5 after label-drop fine-tuning)")


def sampler_options(args: Any, G: Any) -> dict[str, Any]:
    """The sampler options given on a command line, checked against the model (an error names the flag)."""
    given = {"steps": args.steps, "method": args.sampler, "guidance": args.guidance}
    flags = [f"--{'sampler' if k == 'method' else k}" for k, v in given.items() if v is not None]
    if flags and not _is_denoiser(G):
        raise ValueError(f"{', '.join(flags)}: only diffusion models sample in steps; {type(G).__name__} "
                         "generates in one pass")
    return given


def sampler_record(G: Any) -> dict[str, Any] | None:
    """What a diffusion model's images were sampled with (the active settings), for records; else None."""
    return settings_for(G).record() if _is_denoiser(G) else None


def _unwrap(G: Any) -> Any:
    from condgen.networks.discriminator import unwrap

    return unwrap(G)
