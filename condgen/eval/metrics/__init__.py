"""Evaluation metrics as plug-ins (kind `metric`): FID/KID, segmentation score, LPIPS diversity, FD-DINOv2,
CMMD, precision / recall and density / coverage.

Each metric sees the generated (and real) images of this process's shard, keeps a gatherable state,
computes its numbers on the main process from every process's state, and states how it made them (its
protocol record) and which of its numbers reports show (`columns`). `evaluate()` runs the protocol loop.
"""

from condgen.eval.metrics import diversity, features, fid, segmentation  # noqa: F401
from condgen.eval.metrics.base import Column, EvalBatch, EvalContext, Metric
from condgen.eval.metrics.diversity import LPIPSDiversity
from condgen.eval.metrics.features import CMMD, DensityCoverage, FDDINOv2, FeatureMetric, PrecisionRecall
from condgen.eval.metrics.fid import FIDKID
from condgen.eval.metrics.segmentation import SegmentationScore

__all__ = [
    "CMMD",
    "FDDINOv2",
    "FIDKID",
    "Column",
    "DensityCoverage",
    "FeatureMetric",
    "PrecisionRecall",
    "EvalBatch",
    "EvalContext",
    "LPIPSDiversity",
    "Metric",
    "SegmentationScore",
]
