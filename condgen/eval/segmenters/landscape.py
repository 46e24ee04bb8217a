"""The `landscape` entry: `LandscapeSegmenter`, trained here on real synthetic landscapes (cached, no
download)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from torch import nn

from condgen.eval.segmenters.registry import SegmenterSpec, register_segmenter


def _landscape(
    spec: SegmenterSpec, paths: list[Path], *, recipe: Any = None, cache: str | Path | None = None
) -> tuple[nn.Module, dict]:
    from condgen.eval.landscape_segmenter import LandscapeRecipe, landscape_segmenter

    recipe = recipe or LandscapeRecipe()
    if recipe.size != spec.input_size[0]:
        raise ValueError(
            f"the landscape entry's input_size is {spec.input_size}, the recipe trains at "
            f"{recipe.size}; register a copy of the entry with input_size=({recipe.size}, {recipe.size})"
        )
    return landscape_segmenter(recipe, cache=cache)


register_segmenter(
    SegmenterSpec(
        name="landscape",
        datasets=("SyntheticLandscapes",),
        num_classes=9,
        input_size=(64, 64),
        builder=_landscape,
        protocol="LandscapeSegmenter trained on real synthetic landscapes (condgen)",
    )
)
