"""Diversity of multi-modal models: mean pairwise distance between samples of the same label map.

Two distances, reported under different names so they are never confused: LPIPS (AlexNet, the field's
number: `lpips_diversity`) and an LPIPS-style distance in the evaluation segmenter's feature maps
(`backbone='segmenter'`: `seg_diversity`, for data or machines without the ImageNet AlexNet).
"""

from __future__ import annotations

from typing import Any

import torch

from condgen.eval.metrics.base import Column, EvalContext, Metric
from condgen.registry import register

BACKBONES = ("alexnet", "segmenter")
COLUMNS = {
    "alexnet": Column("lpips_diversity", "LPIPS div.", "higher"),
    "segmenter": Column("seg_diversity", "seg-feature div.", "higher"),
}


@register("metric")
class LPIPSDiversity(Metric):
    """Mean pairwise distance over `samples` images of each of the first `maps` label maps (0 = skip).

    Args:
        maps, samples: label maps and samples per map; only multi-modal generators (a VAE or 3-D noise)
            are scored.
        backbone: 'alexnet' (LPIPS v0.1: `lpips_diversity`) or 'segmenter' (the LPIPS-style
            `SegmenterFeatureDistance` in the evaluation segmenter's feature maps: `seg_diversity`, not
            LPIPS and not comparable with published LPIPS numbers).
        lpips_weights: path of the AlexNet file (default: the torch.hub cache).
        random_lpips: a random AlexNet (tests only: meaningless).
    """

    def __init__(
        self,
        *,
        maps: int = 0,
        samples: int = 4,
        backbone: str = "alexnet",
        lpips_weights: str | None = None,
        random_lpips: bool = False,
    ) -> None:
        if backbone not in BACKBONES:
            raise ValueError(f"diversity backbone={backbone!r}; choose one of {', '.join(BACKBONES)}")
        self.maps, self.samples, self.backbone = maps, samples, backbone
        self.lpips_weights, self.random_lpips = lpips_weights, random_lpips
        self.columns = (COLUMNS[backbone],)
        self.key = COLUMNS[backbone].key
        self.lpips_record = None

    def _distance(self, ctx: EvalContext) -> Any:
        from condgen.eval.diversity import LPIPS, SegmenterFeatureDistance

        if self.backbone == "segmenter":
            seg = ctx.segmenter()
            if seg is None:
                raise ValueError("diversity backbone='segmenter' needs a segmenter (not --segmenter none)")
            return SegmenterFeatureDistance(seg)
        return LPIPS(weights=self.lpips_weights, random_weights=self.random_lpips).to(ctx.device)

    def extra_pass(self, ctx: EvalContext) -> None:
        from condgen.eval.diversity import mean_pairwise
        from condgen.eval.split import collate_items, shard
        from condgen.infer.latents import generate, latent_kind

        self.ctx, self.total, self.count = ctx, 0.0, 0
        if self.maps <= 0 or ctx.gan is None or latent_kind(ctx.gan.G) is None:  # None: images made elsewhere
            return
        distance = self._distance(ctx)
        self.lpips_record = distance.record
        for i in shard(min(self.maps, ctx.num_images), ctx.state.num_processes, ctx.state.process_index):
            b = collate_items(ctx.dataset, [i])
            inst = b["instance"].to(ctx.device) if "instance" in b else None
            seg = ctx.spec.encode(b["label"].to(ctx.device), inst)
            samples = torch.cat(
                [generate(ctx.gan, seg, [i], seed=ctx.seed, sample=s) for s in range(self.samples)]
            )
            mean, _ = mean_pairwise(distance, samples)
            self.total, self.count = self.total + mean, self.count + 1

    def state(self) -> Any:
        return (self.total, self.count)

    def compute(self, states: list[Any]) -> dict[str, Any]:
        self.maps_scored = sum(c for _, c in states)
        return {self.key: sum(t for t, _ in states) / self.maps_scored} if self.maps_scored else {}

    def record(self) -> dict[str, Any]:
        field = "diversity" if self.backbone == "alexnet" else "seg_diversity"
        if not self.lpips_record:
            return {field: None}
        key = "lpips" if self.backbone == "alexnet" else "distance"
        return {
            field: {
                key: self.lpips_record,
                "metric": self.key,
                "maps": self.maps_scored,
                "samples_per_map": self.samples,
                "pairs": "all pairs of each map's samples, mean over pairs then maps",
            }
        }

    def meaningless(self) -> list[str]:
        if self.lpips_record and self.backbone == "alexnet" and self.random_lpips:
            return ["LPIPS uses a RANDOM AlexNet (random_lpips=True): diversity is meaningless"]
        return []
