"""Metrics on sets of generated and real features: FD-DINOv2, CMMD, precision / recall, density / coverage.

All share `FeatureMetric`: a feature space ('inception', 'dinov2', 'clip' or the evaluation's 'segmenter'),
the resize mode that brings images to its extractor (recorded), real features cached per protocol like FID's,
and one extractor per evaluation shared by every metric that uses it. Each metric records its feature
network, weights digest and resize under its own key of the protocol (`fd_dinov2`, `cmmd`, ...).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from condgen.eval.distances import cmmd, density_coverage, precision_recall
from condgen.eval.fid import fid_from_features
from condgen.eval.metrics.base import Column, EvalContext
from condgen.eval.metrics.fid import FeatureSetMetric
from condgen.eval.resize import check_resize
from condgen.registry import register

FEATURE_SPACES = ("inception", "dinov2", "clip", "segmenter")
DEFAULT_RESIZE = {"inception": "legacy_tf", "dinov2": "legacy_tf", "clip": "torch_bicubic"}


class FeatureMetric(FeatureSetMetric):
    """Base of metrics computed from (real, generated) feature sets; subclasses define `score`.

    Args:
        features: feature space: 'inception', 'dinov2', 'clip' or 'segmenter'.
        weights: path of the extractor's weight file (default: its WeightFile's usual places).
        random_weights: reduced-size extractors with seeded random weights (tests only: meaningless numbers).
        resize: 'legacy_tf', 'clean' or 'torch_bicubic' (condgen/eval/resize.py); default: the space's own.
    """

    key: str = "feature_metric"

    def __init__(
        self,
        *,
        features: str = "dinov2",
        weights: str | None = None,
        random_weights: bool = False,
        resize: str | None = None,
    ) -> None:
        if features not in FEATURE_SPACES:
            raise ValueError(f"features={features!r}; choose one of {', '.join(FEATURE_SPACES)}")
        self.features, self.weights, self.random_weights = features, weights, random_weights
        self.resize = (
            check_resize(resize) if resize is not None else DEFAULT_RESIZE.get(features, "legacy_tf")
        )

    def setup(self, ctx: EvalContext) -> None:
        super().setup(ctx)
        self.use_space(
            ctx, self.features, weights=self.weights, random_weights=self.random_weights, resize=self.resize
        )

    def compute(self, states: list[Any]) -> dict[str, Any]:
        real, fake = self.gathered(states)
        return self.score(np.asarray(real, np.float64), fake.astype(np.float64))

    def score(self, real: np.ndarray, fake: np.ndarray) -> dict[str, Any]:
        raise NotImplementedError

    def settings(self) -> dict[str, Any]:
        """The metric's own protocol fields (k, sigma, ...)."""
        return {}

    def record(self) -> dict[str, Any]:
        return {
            self.key: {
                "features": self.extractor,
                **self.settings(),
                "real_features_cache": self.cache_record(),
            }
        }

    def meaningless(self) -> list[str]:
        if self.space.random_weights:
            return [
                f"{self.key} uses a RANDOM reduced {self.features} network (random_weights=True): meaningless"
            ]
        return []


@register("metric")
class FDDINOv2(FeatureMetric):
    """Frechet distance on DINOv2 ViT-L/14 features (Stein et al. 2023); `features` may name another space."""

    key = "fd_dinov2"
    columns = (Column("fd_dinov2", "FD-DINOv2", "lower"),)

    def setup(self, ctx: EvalContext) -> None:
        super().setup(ctx)
        if self.features != "dinov2":  # FD on other features is FID's job (or a differently named number)
            raise ValueError(
                f"FDDINOv2 computes FD on DINOv2 features, got features={self.features!r}; "
                "use FIDKID for Inception or segmenter features"
            )

    def score(self, real: np.ndarray, fake: np.ndarray) -> dict[str, Any]:
        return {"fd_dinov2": fid_from_features(real, fake)}


@register("metric")
class CMMD(FeatureMetric):
    """CMMD (Jayasumana et al. 2024): MMD^2 x 1000, Gaussian RBF sigma 10, L2-normalised CLIP embeddings.

    Args:
        sigma, scale: the kernel bandwidth and the factor (10 and 1000 in the paper).
    """

    key = "cmmd"
    columns = (Column("cmmd", "CMMD", "lower"),)

    def __init__(
        self, *, features: str = "clip", sigma: float = 10.0, scale: float = 1000.0, **kw: Any
    ) -> None:
        super().__init__(features=features, **kw)
        self.sigma, self.scale = sigma, scale

    def score(self, real: np.ndarray, fake: np.ndarray) -> dict[str, Any]:
        def unit(x: np.ndarray) -> np.ndarray:
            return x / np.linalg.norm(x, axis=1, keepdims=True)

        return {"cmmd": cmmd(unit(real), unit(fake), sigma=self.sigma, scale=self.scale)}

    def settings(self) -> dict[str, Any]:
        return {
            "sigma": self.sigma,
            "scale": self.scale,
            "estimator": "biased MMD^2, L2-normalised embeddings",
        }


class _KNNMetric(FeatureMetric):
    """A k-NN metric; `k` is recorded and part of the column keys' protocol."""

    def __init__(self, *, k: int, features: str = "dinov2", **kw: Any) -> None:
        super().__init__(features=features, **kw)
        if k < 1:
            raise ValueError(f"k={k}: the k-NN metrics need k >= 1")
        self.k = k

    def settings(self) -> dict[str, Any]:
        return {"k": self.k}


@register("metric")
class PrecisionRecall(_KNNMetric):
    """Improved precision / recall (Kynkaenniemi et al. 2019), k = 3, on a chosen feature space."""

    key = "precision_recall"
    columns = (Column("precision", "precision", "higher"), Column("recall", "recall", "higher"))

    def __init__(self, *, k: int = 3, **kw: Any) -> None:
        super().__init__(k=k, **kw)

    def score(self, real: np.ndarray, fake: np.ndarray) -> dict[str, Any]:
        return precision_recall(real, fake, k=self.k)


@register("metric")
class DensityCoverage(_KNNMetric):
    """Density / coverage (Naeem et al. 2020), k = 5, on a chosen feature space."""

    key = "density_coverage"
    columns = (Column("density", "density", "higher"), Column("coverage", "coverage", "higher"))

    def __init__(self, *, k: int = 5, **kw: Any) -> None:
        super().__init__(k=k, **kw)

    def score(self, real: np.ndarray, fake: np.ndarray) -> dict[str, Any]:
        return density_coverage(real, fake, k=self.k)
