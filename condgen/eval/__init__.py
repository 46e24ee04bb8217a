"""Evaluation: FID/KID, segmentation accuracy, LPIPS diversity, synthesis, and the protocol that ties them.

`evaluate(run)` writes a metrics JSON whose `protocol` records every choice that changes a number (images,
resolution, resize filter, feature network and its weights' SHA-256, segmenter, seed); `docs/evaluation.md`
describes the protocol. Pretrained weights are downloaded only on request
(`condgen weights fetch`, `condgen/weights.py`).
"""

from condgen.eval import landscape_segmenter  # noqa: F401  (LandscapeRecipe is gin-configurable)
from condgen.eval.evaluate import evaluate, protocol_line, shard
from condgen.eval.fid import (
    feature_statistics,
    fid_from_features,
    frechet_distance,
    kid_from_features,
    to_uint8,
)
from condgen.eval.miou import confusion_matrix, segmentation_scores
from condgen.eval.segmenters import (
    SEGMENTERS,
    Segmenter,
    SegmenterSpec,
    get_segmenter,
    load_segmenter,
    register_segmenter,
    segmenter_for,
)
from condgen.eval.synthesize import generate, latents, load_generator, synthesize_folder
from condgen.weights import WeightFile, WeightsMismatchError, WeightsNotFoundError, cache_dir

__all__ = [
    "SEGMENTERS",
    "Segmenter",
    "SegmenterSpec",
    "WeightFile",
    "WeightsMismatchError",
    "WeightsNotFoundError",
    "cache_dir",
    "confusion_matrix",
    "evaluate",
    "feature_statistics",
    "fid_from_features",
    "frechet_distance",
    "generate",
    "get_segmenter",
    "kid_from_features",
    "latents",
    "load_generator",
    "load_segmenter",
    "protocol_line",
    "register_segmenter",
    "segmenter_for",
    "segmentation_scores",
    "shard",
    "synthesize_folder",
    "to_uint8",
]
