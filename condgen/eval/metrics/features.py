"""Metrics on sets of generated and real features: FD-DINOv2, CMMD, precision / recall, density / coverage.

All share `FeatureMetric`: a feature space ('inception', 'dinov2', 'clip' or the evaluation's 'segmenter'),
the resize mode that brings images to its extractor (recorded), real features cached per protocol like FID's,
and one extractor per evaluation shared by every metric that uses it. Each metric records its feature
network, weights digest and resize under its own key of the protocol (`fd_dinov2`, `cmmd`, ...).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from torch import Tensor

from condgen.eval.distances import cmmd, density_coverage, precision_recall
from condgen.eval.fid import cache_key, cache_path, cached_features, fid_from_features, to_uint8
from condgen.eval.metrics.base import Column, EvalBatch, EvalContext, Metric
from condgen.eval.resize import check_resize
from condgen.registry import register

FEATURE_SPACES = ("inception", "dinov2", "clip", "segmenter")
DEFAULT_RESIZE = {"inception": "legacy_tf", "dinov2": "legacy_tf", "clip": "torch_bicubic"}


class _Extractor:
    """A feature space of one evaluation: `extract(img in [-1, 1]) -> (b, d)` and its protocol record.

    Remembers the features of the last batch, so metrics that share the space extract each batch once.
    """

    def __init__(
        self, space: str, ctx: EvalContext, *, weights: str | None, random_weights: bool, resize: str
    ) -> None:
        self.random_weights = random_weights and space != "segmenter"
        self._last: tuple[Any, Tensor] | None = None
        if space == "segmenter":
            seg = ctx.segmenter()
            if seg is None:
                raise ValueError("feature space 'segmenter' needs a segmenter (evaluate(segmenter=...))")
            self.net = seg.features
            self.record = {
                "name": f"segmenter:{seg.spec.name}",
                "weights_sha256": seg.record.get("weights_sha256"),
                "input_size": list(seg.spec.input_size or ctx.spec.size),
                "resize": "the segmenter's own protocol",
            }
            return
        if space == "inception":
            from condgen.eval.inception import InceptionFeatures

            if resize != "legacy_tf":
                raise ValueError(
                    f"resize={resize!r} with Inception features: torch-fidelity's Inception "
                    "resizes inside (legacy_tf); use dinov2 or clip features for other modes"
                )
            net: Any = InceptionFeatures(weights=weights, random_weights=random_weights)
            self.record = {
                "name": net.name,
                "weights_sha256": net.weights_sha256,
                "input_size": [299, 299],
                "resize": "legacy_tf",
            }
        else:
            from condgen.eval.extractors import CLIPFeatures, DINOv2Features

            cls = DINOv2Features if space == "dinov2" else CLIPFeatures
            net = cls(weights=weights, random_weights=random_weights, resize=resize)
            self.record = net.record()
        net = net.to(ctx.device)
        self.net = lambda img: net(to_uint8(img))

    def __call__(self, img: Tensor, tag: Any) -> Tensor:
        if self._last is None or self._last[0] != tag:
            self._last = (tag, self.net(img))
        return self._last[1]


class FeatureMetric(Metric):
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
        space = (self.features, self.weights, self.random_weights, self.resize)
        self.extractor = ctx.shared(
            ("features", *space),
            lambda: _Extractor(
                self.features,
                ctx,
                weights=self.weights,
                random_weights=self.random_weights,
                resize=self.resize,
            ),
        )
        from condgen.eval.metrics.fid import resize_filter

        h, w = ctx.spec.size
        self.cache_fields = {
            "dataset": type(ctx.dataset).__name__,
            "dataset_repr": repr(ctx.dataset),
            "split": ctx.split,
            "images": ctx.num_images,
            "resolution": f"{h}x{w}",
            "resize_filter": resize_filter(ctx.dataset),
            "extractor": self.extractor.record["name"],
            "extractor_weights": self.extractor.record["weights_sha256"],
            "extractor_resize": self.extractor.record["resize"],
        }
        self.need_real = not cache_path(self.cache_fields, ctx.cache).is_file()
        self.fake_f: list[np.ndarray] = []
        self.real_f: list[np.ndarray] = []

    def update(self, batch: EvalBatch) -> None:
        tag = tuple(batch.indices)
        self.fake_f.append(self.extractor(batch.fake, ("fake", tag)).cpu().numpy())
        if self.need_real:
            self.real_f.append(self.extractor(batch.real, ("real", tag)).cpu().numpy())

    def state(self) -> Any:
        return {"fake": self.fake_f, "real": self.real_f}

    def compute(self, states: list[Any]) -> dict[str, Any]:
        fake = np.concatenate([a for s in states for a in s["fake"]])
        if len(fake) != self.ctx.num_images:
            raise RuntimeError(
                f"gathered {len(fake)} generated images, expected exactly {self.ctx.num_images}"
            )
        real, self.cache_file, self.cache_hit = cached_features(
            self.cache_fields,
            lambda: np.concatenate([a for s in states for a in s["real"]]),
            root=self.ctx.cache,
        )
        return self.score(np.asarray(real, np.float64), fake.astype(np.float64))

    def score(self, real: np.ndarray, fake: np.ndarray) -> dict[str, Any]:
        raise NotImplementedError

    def settings(self) -> dict[str, Any]:
        """The metric's own protocol fields (k, sigma, ...)."""
        return {}

    def record(self) -> dict[str, Any]:
        return {
            self.key: {
                "features": self.extractor.record,
                **self.settings(),
                "real_features_cache": {
                    "path": str(self.cache_file),
                    "hit": self.cache_hit,
                    "key": cache_key(**self.cache_fields),
                },
            }
        }

    def meaningless(self) -> list[str]:
        if self.extractor.random_weights:
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
