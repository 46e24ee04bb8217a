"""Inference: a trained model as one object, `SynthesisPipeline` (the floor between `train/` and `eval/`).

    pipe = condgen.load("runs/quickstart")      # a run, checkpoint, converted or save_pretrained folder,
    images = pipe(label_ids, seed=0)            # or a registered name ("spade-coco") / Hub repo id
    pipe.save_pretrained("my-model")

- `pipeline.py`: `SynthesisPipeline` (`from_run`, `from_pretrained`, `encode`, `__call__`, `encode_style`,
  `resample`, `save_pretrained`, `push_to_hub`) and `load`.
- `latents.py`: seeded latents, the generator call (`generate`), and the latent kinds.
- `dataset.py`: `DatasetInfo`, the dataset entry resolved once at load time.
- `pretrained.py`: the registry of released models (`MODELS`) and name resolution (offline-first).
- `hub.py`: the `save_pretrained` folder format and `push_to_hub`.
- `resample.py`: OASIS's per-image and local noise resampling.

Extension point for new model families (a diffusion sampler, per-region styles): register a
`LatentKind(name, describe, detect, generate, accepts={...})` with `register_latent_kind`, and name it on the
generator class (`latent_kind = "diffusion"`). `generate(G, seg, draw)` receives a `Draw` (indices, seed,
sample, style, region_styles, steps); `accepts` lists the optional inputs it honours ('style',
'region_styles', 'steps', 'resample'), and the pipeline refuses the others with an `UnsupportedInput`
(a `NotImplementedError`) naming the kind. Nothing in this package needs editing for a new kind.
"""

from condgen.infer import diffusion  # noqa: F401  (registers the diffusion latent kind)
from condgen.infer.dataset import DatasetInfo
from condgen.infer.latents import (
    LATENT_KINDS,
    Draw,
    LatentKind,
    UnsupportedInput,
    generate,
    latent_kind,
    latents,
    register_latent_kind,
)
from condgen.infer.pipeline import SynthesisPipeline, load
from condgen.infer.pretrained import MODELS, PretrainedModel, register_pretrained

__all__ = [
    "LATENT_KINDS",
    "MODELS",
    "DatasetInfo",
    "Draw",
    "LatentKind",
    "PretrainedModel",
    "SynthesisPipeline",
    "UnsupportedInput",
    "generate",
    "latent_kind",
    "latents",
    "load",
    "register_latent_kind",
    "register_pretrained",
]
