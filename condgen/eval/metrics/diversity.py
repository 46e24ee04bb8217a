"""LPIPS diversity of multi-modal models: mean pairwise LPIPS between samples of the same label map."""

from __future__ import annotations

from typing import Any

import torch

from condgen.eval.metrics.base import Column, EvalContext, Metric
from condgen.registry import register


@register("metric")
class LPIPSDiversity(Metric):
    """Mean pairwise LPIPS over `samples` images of each of the first `maps` label maps (0 = skip).

    Args:
        maps, samples: label maps and samples per map; only multi-modal generators (`use_vae`) are scored.
        lpips_weights: path of the AlexNet file (default: the torch.hub cache).
        random_lpips: a random AlexNet (tests only: meaningless).
    """

    columns = (Column("lpips_diversity", "LPIPS div.", "higher"),)

    def __init__(
        self, *, maps: int = 0, samples: int = 4, lpips_weights: str | None = None, random_lpips: bool = False
    ) -> None:
        self.maps, self.samples, self.lpips_weights, self.random_lpips = (
            maps,
            samples,
            lpips_weights,
            random_lpips,
        )
        self.lpips_record = None

    def extra_pass(self, ctx: EvalContext) -> None:
        from condgen.eval.diversity import LPIPS, mean_pairwise
        from condgen.eval.split import collate_items, shard
        from condgen.eval.synthesize import encode_seg, generate

        self.ctx, self.total, self.count = ctx, 0.0, 0
        if not (getattr(ctx.gan.G, "use_vae", False) and self.maps > 0):
            return
        lpips = LPIPS(weights=self.lpips_weights, random_weights=self.random_lpips).to(ctx.device)
        self.lpips_record = lpips.record
        for i in shard(min(self.maps, ctx.num_images), ctx.state.num_processes, ctx.state.process_index):
            b = collate_items(ctx.dataset, [i])
            inst = b["instance"].to(ctx.device) if "instance" in b else None
            seg = encode_seg(b["label"].to(ctx.device), ctx.spec, inst)
            samples = torch.cat(
                [generate(ctx.gan, seg, [i], seed=ctx.seed, sample=s) for s in range(self.samples)]
            )
            mean, _ = mean_pairwise(lpips, samples)
            self.total, self.count = self.total + mean, self.count + 1

    def state(self) -> Any:
        return (self.total, self.count)

    def compute(self, states: list[Any]) -> dict[str, Any]:
        self.maps_scored = sum(c for _, c in states)
        return {"lpips_diversity": sum(t for t, _ in states) / self.maps_scored} if self.maps_scored else {}

    def record(self) -> dict[str, Any]:
        if not self.lpips_record:
            return {"diversity": None}
        return {
            "diversity": {
                "lpips": self.lpips_record,
                "maps": self.maps_scored,
                "samples_per_map": self.samples,
            }
        }

    def meaningless(self) -> list[str]:
        if self.lpips_record and self.random_lpips:
            return ["LPIPS uses a RANDOM AlexNet (random_lpips=True): diversity is meaningless"]
        return []
