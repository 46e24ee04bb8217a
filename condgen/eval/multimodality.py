"""Does a VAE run on the synthetic landscapes show multi-modality and style transfer? Two quick numbers.

`multimodality(run)` loads the run's newest checkpoint and, on `maps` validation landscapes:

- `seg_diversity`: the mean pairwise `SegmenterFeatureDistance` (LPIPS-style, in the landscape segmenter's
  feature maps; NOT LPIPS) between `samples` random-z images of each map; 0 means the samples are identical.
  Only computed with a segmenter at hand (`segmenter=`, or the landscape segmenter when it is already cached:
  training one takes minutes, too long for the end of a quickstart).
- `style_consistency`: the Pearson correlation, over the `maps` photos used as style images on one label
  map, between each photo's mean brightness and that of the image generated with its encoding (sample 0:
  the posterior mean). The landscapes' lighting varies per scene, so 1 means the lighting is transferred and
  0 that the style photo is ignored.

The quickstart's end-of-run summary prints both (`condgen.cli.train`), so what it shows is measured.
"""

from __future__ import annotations

from itertools import combinations
from pathlib import Path
from typing import Any

import torch


@torch.no_grad()
def multimodality(
    run: str | Path, *, maps: int = 8, samples: int = 3, segmenter: Any = "cached", seed: int = 0
) -> dict[str, Any]:
    """{'seg_diversity', 'style_consistency', 'maps', 'samples', ...} of a VAE run on the landscapes; {} for a
    run without a VAE encoder or on other data. `segmenter`: a loaded `Segmenter`, 'cached' (the landscape
    segmenter if it is in the cache, else no diversity) or None."""
    from condgen.data.landscapes import landscape
    from condgen.eval.diversity import SegmenterFeatureDistance
    from condgen.infer import SynthesisPipeline

    pipe = SynthesisPipeline.from_run(run)
    gan, spec = pipe.gan, pipe.spec
    if pipe.latent_kind != "vae" or gan.E is None or pipe.dataset.name != "SyntheticLandscapes":
        return {}
    h, w = spec.size
    scenes = [landscape(seed, i, h, w, split="val") for i in range(maps)]
    labels = torch.stack([torch.from_numpy(s["label"].astype("int64")) for s in scenes])[:, None]
    photos = torch.stack([torch.from_numpy(s["image"]).permute(2, 0, 1) for s in scenes]).float() / 127.5 - 1
    seg = pipe.encode(labels, source="validation landscapes")
    out: dict[str, Any] = {"maps": maps, "samples": samples, "step": pipe.provenance.get("step")}

    # style: every photo's posterior mean on the first map
    mu, _ = gan.E(photos)
    styled = torch.cat([gan.G(seg[:1], mu[i : i + 1]) for i in range(maps)])
    x, y = photos.mean(dim=(1, 2, 3)), styled.mean(dim=(1, 2, 3))
    out["style_consistency"] = round(float(torch.corrcoef(torch.stack([x, y]))[0, 1]), 3)

    if segmenter == "cached":
        segmenter = _cached_landscape_segmenter()
    if segmenter is None:
        out["seg_diversity"] = None
        return out
    fakes = [pipe.generate(seg, list(range(maps)), seed=seed, sample=k) for k in range(samples)]
    distance = SegmenterFeatureDistance(segmenter)
    pairs = [distance(fakes[a], fakes[b]) for a, b in combinations(range(samples), 2)]
    out["seg_diversity"] = float(f"{float(torch.stack(pairs).mean()):.4g}")  # tiny when z is ignored
    return out


def _cached_landscape_segmenter() -> Any:
    """The default landscape segmenter when its cache file exists, else None (never trains one here)."""
    from condgen.eval.landscape_segmenter import LandscapeRecipe, cached_segmenter_path
    from condgen.eval.segmenters import load_segmenter

    if cached_segmenter_path(LandscapeRecipe()) is None:
        return None
    return load_segmenter("landscape")


def describe(numbers: dict[str, Any]) -> list[str]:
    """The summary's lines for `multimodality`'s numbers."""
    if not numbers:
        return []
    div = numbers.get("seg_diversity")
    seg = (f"{div:.3g} (0: identical samples)" if div is not None else
           "not computed (no cached landscape segmenter: `condgen eval RUN --features segmenter "
           "--diversity_features segmenter` trains one and reports it)")
    return [
        f"  diversity:   seg_diversity {seg}, {numbers['samples']} samples of {numbers['maps']} val maps",
        f"  style:       style_consistency {numbers['style_consistency']:.2f} (brightness of style photo vs. "
        "its image: 1 transferred, 0 ignored)",
    ]
