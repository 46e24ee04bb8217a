"""FID and KID against the real images of the split (features of the FID Inception, or of the segmenter).

Real features are cached per protocol (`condgen.eval.fid.cached_features`): a process extracts them only
when the cache has none.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from condgen.eval.fid import (
    cache_key,
    cache_path,
    cached_features,
    fid_from_features,
    kid_from_features,
    to_uint8,
)
from condgen.eval.metrics.base import Column, EvalBatch, EvalContext, Metric
from condgen.registry import register

FEATURES = ("inception", "segmenter")


@register("metric")
class FIDKID(Metric):
    """FID and KID of the generated images against the real ones.

    Args:
        features: 'inception' (the field's FID network) or 'segmenter' (the segmenter's features: a domain
            FID, not comparable with published numbers).
        inception_weights: path of the pytorch-fid Inception file (default: the cache).
        random_inception: a seeded random Inception (tests only: the numbers are meaningless).
        kid_subsets, kid_subset_size: KID's random subsets (the size is capped at the number of images).
    """

    columns = (Column("fid", "FID", "lower"), Column("kid_mean", "KID", "lower"))

    def __init__(
        self,
        *,
        features: str = "inception",
        inception_weights: str | None = None,
        random_inception: bool = False,
        kid_subsets: int = 100,
        kid_subset_size: int = 1000,
    ) -> None:
        if features not in FEATURES:
            raise ValueError(f"features={features!r}; choose one of {', '.join(FEATURES)}")
        self.features, self.inception_weights, self.random_inception = (
            features,
            inception_weights,
            random_inception,
        )
        self.kid_subsets, self.kid_subset_size = kid_subsets, kid_subset_size

    def setup(self, ctx: EvalContext) -> None:
        super().setup(ctx)
        if self.features == "segmenter":
            seg = ctx.segmenter()
            if seg is None:
                raise ValueError("features='segmenter' needs a segmenter")
            self.extract = seg.features
            self.extractor = {
                "name": f"segmenter:{seg.spec.name}",
                "weights_sha256": seg.record.get("weights_sha256"),
                "input_size": list(seg.spec.input_size or ctx.spec.size),
            }
        else:
            from condgen.eval.inception import InceptionFeatures

            inception = InceptionFeatures(
                weights=self.inception_weights, random_weights=self.random_inception
            )
            inception = inception.to(ctx.device)
            self.extract = lambda img: inception(to_uint8(img))
            self.extractor = {
                "name": inception.name,
                "weights_sha256": inception.weights_sha256,
                "input_size": [299, 299],
                "resize": "legacy_tf",  # torch-fidelity resizes inside its Inception (condgen/eval/resize.py)
            }
        h, w = ctx.spec.size
        ds = ctx.dataset
        self.cache_fields = {
            "dataset": type(ds).__name__,
            "dataset_repr": repr(ds),
            "split": ctx.split,
            "images": ctx.num_images,
            "resolution": f"{h}x{w}",
            "resize_filter": resize_filter(ds),
            "extractor": self.extractor["name"],
            "extractor_weights": self.extractor["weights_sha256"],
        }
        self.need_real = not cache_path(self.cache_fields, ctx.cache).is_file()
        self.fake_f: list[np.ndarray] = []
        self.real_f: list[np.ndarray] = []

    def update(self, batch: EvalBatch) -> None:
        self.fake_f.append(self.extract(batch.fake).cpu().numpy())
        if self.need_real:
            self.real_f.append(self.extract(batch.real).cpu().numpy())

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
        out: dict[str, Any] = {"fid": fid_from_features(real, fake)}
        out.update(
            kid_from_features(
                real, fake, subsets=self.kid_subsets, subset_size=self.kid_subset_size, seed=self.ctx.seed
            )
        )
        self.kid_used = (out["kid_subsets"], out["kid_subset_size"])
        return out

    def record(self) -> dict[str, Any]:
        return {
            "features": self.extractor,
            "kid_subsets": self.kid_used[0],
            "kid_subset_size": self.kid_used[1],
            "real_features_cache": {
                "path": str(self.cache_file),
                "hit": self.cache_hit,
                "key": cache_key(**self.cache_fields),
            },
        }

    def meaningless(self) -> list[str]:
        if self.features == "inception" and self.random_inception:
            return ["FID/KID use a RANDOM Inception (random_inception=True): the numbers are meaningless"]
        return []


def resize_filter(ds: Any) -> str:
    """How the dataset brings real photos to the output size (part of the FID protocol)."""
    if type(ds).__name__ == "SyntheticLandscapes":
        return "none (rendered at the output size)"
    return f"{getattr(ds, 'preprocess', '?')}: photos bicubic, labels nearest (the dataset's own pipeline)"
