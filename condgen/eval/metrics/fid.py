"""FID and KID against the real images of the split (features of the FID Inception, or of the segmenter).

Real features are cached per protocol (`condgen.eval.fid.cached_features`): a process extracts them only
when the cache has none.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from condgen.eval.fid import (
    cache_key,
    cache_path,
    cached_features,
    fid_from_features,
    kid_from_features,
    to_uint8,
)
from condgen.eval.metrics.base import Column, EvalBatch, EvalContext, Metric
from condgen.eval.resize import check_resize, resize_images
from condgen.registry import register

FEATURES = ("inception", "segmenter")


class FeatureSpace:
    """A feature space of one evaluation: `extract(img in [-1, 1]) -> (b, d)` and its protocol record.

    Remembers the features of the last batch, so metrics that share the space extract each batch once.
    """

    def __init__(
        self, space: str, ctx: EvalContext, *, weights: str | None, random_weights: bool, resize: str
    ) -> None:
        self.random_weights = random_weights and space != "segmenter"
        self._last: tuple[Any, Tensor] | None = None
        if space == "segmenter":
            if resize != "legacy_tf":
                raise ValueError(
                    f"resize={resize!r} with segmenter features: the segmenter's protocol "
                    "brings images to its input; leave resize at its default"
                )
            seg = ctx.segmenter()
            if seg is None:
                raise ValueError("feature space 'segmenter' needs a segmenter (evaluate(segmenter=...))")
            self.net = seg.features
            self.record = {
                "name": f"segmenter:{seg.spec.name}",
                "weights_sha256": seg.record.get("weights_sha256"),
                "input_size": list(seg.spec.input_size or ctx.spec.size),
            }  # no `resize`: the segmenter's own protocol brings images to its input
            return
        if space == "inception":
            from condgen.eval.inception import InceptionFeatures

            inception = InceptionFeatures(weights=weights, random_weights=random_weights)
            self.record = {
                "name": inception.name,
                "weights_sha256": inception.weights_sha256,
                "input_size": [299, 299],
                "resize": "legacy_tf",
            }
            net: Any = inception
            if resize != "legacy_tf":
                # torch-fidelity's Inception takes uint8 and resizes inside: resize first, round to 8 bits;
                # its own resize of a 299x299 input is then the identity
                def net(img: Tensor) -> Tensor:
                    x = resize_images(img, (299, 299), resize)
                    return inception(x.round().clamp(0, 255).to(torch.uint8))

                inception.to(ctx.device)
                self.record["resize"] = f"{resize} (then rounded to 8 bits)"
        else:
            from condgen.eval.extractors import CLIPFeatures, DINOv2Features

            cls = DINOv2Features if space == "dinov2" else CLIPFeatures
            net = cls(weights=weights, random_weights=random_weights, resize=resize)
            self.record = net.record()
        if isinstance(net, nn.Module):
            net = net.to(ctx.device)
        self.net = lambda img: net(to_uint8(img))

    def __call__(self, img: Tensor, tag: Any) -> Tensor:
        if self._last is None or self._last[0] != tag:
            self._last = (tag, self.net(img))
        return self._last[1]


class FeatureSetMetric(Metric):
    """Base of metrics computed from the real and generated feature sets of the evaluation.

    A subclass sets `cache_fields` (the protocol fields that fix the real features) and calls `start_sets`
    in `setup`, and extracts with `featurize`; `gathered` returns both sets on the main process, the real
    ones from the cache when it has them.
    """

    cache_fields: dict[str, Any]

    def use_space(
        self, ctx: EvalContext, space: str, *, weights: str | None, random_weights: bool, resize: str
    ) -> None:
        """Take this evaluation's `space` network (built once, shared) and start the feature sets."""
        self.space = ctx.shared(
            ("features", space, weights, random_weights, resize),
            lambda: FeatureSpace(space, ctx, weights=weights, random_weights=random_weights, resize=resize),
        )
        self.extractor = self.space.record
        h, w = ctx.spec.size
        self.cache_fields = {
            "dataset": type(ctx.dataset).__name__,
            "dataset_repr": repr(ctx.dataset),
            "split": ctx.split,
            "images": ctx.num_images,
            "resolution": f"{h}x{w}",
            "resize_filter": resize_filter(ctx.dataset),
            "extractor": self.extractor["name"],
            "extractor_weights": self.extractor["weights_sha256"],
        }
        if self.extractor.get("resize", "legacy_tf") != "legacy_tf":  # keys of legacy_tf caches unchanged
            self.cache_fields["extractor_resize"] = self.extractor["resize"]
        self.start_sets(ctx)

    def featurize(self, img: Tensor, which: str, indices: list[int]) -> Tensor:
        """(b, d) features of images in [-1, 1]; `which` is 'fake' or 'real'."""
        return self.space(img, (which, tuple(indices)))

    def start_sets(self, ctx: EvalContext) -> None:
        self.need_real = not cache_path(self.cache_fields, ctx.cache).is_file()
        self.fake_f: list[np.ndarray] = []
        self.real_f: list[np.ndarray] = []

    def update(self, batch: EvalBatch) -> None:
        self.fake_f.append(self.featurize(batch.fake, "fake", batch.indices).cpu().numpy())
        if self.need_real:
            self.real_f.append(self.featurize(batch.real, "real", batch.indices).cpu().numpy())

    def state(self) -> Any:
        return {"fake": self.fake_f, "real": self.real_f}

    def gathered(self, states: list[Any]) -> tuple[np.ndarray, np.ndarray]:
        """(real, fake) feature arrays of every process (real from the cache or stored into it)."""
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
        return real, fake

    def cache_record(self) -> dict[str, Any]:
        return {"path": str(self.cache_file), "hit": self.cache_hit, "key": cache_key(**self.cache_fields)}


@register("metric")
class FIDKID(FeatureSetMetric):
    """FID and KID of the generated images against the real ones.

    Args:
        features: 'inception' (the field's FID network) or 'segmenter' (the segmenter's features: a domain
            FID, not comparable with published numbers).
        inception_weights: path of the pytorch-fid Inception file (default: the cache).
        random_inception: a seeded random Inception (tests only: the numbers are meaningless).
        kid_subsets, kid_subset_size: KID's random subsets (the size is capped at the number of images).
        resize: how images reach the Inception: 'legacy_tf' (torch-fidelity's, as the published FIDs) or
            'clean' (clean-fid's PIL bicubic, then rounded to 8 bits); see condgen/eval/resize.py.
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
        resize: str = "legacy_tf",
    ) -> None:
        if features not in FEATURES:
            raise ValueError(f"features={features!r}; choose one of {', '.join(FEATURES)}")
        self.features, self.inception_weights, self.random_inception = (
            features,
            inception_weights,
            random_inception,
        )
        self.kid_subsets, self.kid_subset_size = kid_subsets, kid_subset_size
        self.resize = check_resize(resize)

    def setup(self, ctx: EvalContext) -> None:
        super().setup(ctx)
        self.use_space(
            ctx,
            self.features,
            weights=self.inception_weights,
            random_weights=self.random_inception,
            resize=self.resize,
        )

    def compute(self, states: list[Any]) -> dict[str, Any]:
        real, fake = self.gathered(states)
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
            "real_features_cache": self.cache_record(),
        }

    def meaningless(self) -> list[str]:
        if self.features == "inception" and self.random_inception:
            return ["FID/KID use a RANDOM Inception (random_inception=True): the numbers are meaningless"]
        return []


def resize_filter(ds: Any) -> str:
    """How the dataset brings real photos to the output size (part of the FID protocol)."""
    if type(ds).__name__ == "SyntheticLandscapes":
        return "none (rendered at the output size)"
    if type(ds).__name__ == "ForeignImages":  # a results folder: its own record says it
        return ds.preprocess
    return f"{getattr(ds, 'preprocess', '?')}: photos bicubic, labels nearest (the dataset's own pipeline)"
