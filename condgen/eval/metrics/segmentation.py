"""Segmentation score: mIoU and pixel accuracy of a segmenter on the generated images and on the real ones.

The real images' score, computed the same way, is the upper bound reported beside every number.
"""

from __future__ import annotations

from typing import Any

import torch

from condgen.eval.metrics.base import Column, EvalBatch, EvalContext, Metric
from condgen.registry import register


@register("metric")
class SegmentationScore(Metric):
    """mIoU / pixel accuracy of the evaluation's segmenter (`evaluate(segmenter=...)`) on fake and real."""

    columns = (Column("miou", "mIoU", "higher", 100.0),)

    def setup(self, ctx: EvalContext) -> None:
        super().setup(ctx)
        self.net = ctx.segmenter()
        k = self.net.spec.num_classes if self.net is not None else 0
        self.conf = {which: torch.zeros(k, k, dtype=torch.long) for which in ("fake", "real")}

    def update(self, batch: EvalBatch) -> None:
        if self.net is None:
            return
        # the segmenter's protocol (input size, which labels); the real upper bound goes the same way
        for which, img in (("fake", batch.fake), ("real", batch.real)):
            if img is None:  # generated images scored without their real photos
                continue
            self.conf[which] += self.net.confusion(
                img, batch.label, ds=self.ctx.dataset, indices=batch.indices
            )

    def state(self) -> Any:
        return self.conf

    def compute(self, states: list[Any]) -> dict[str, Any]:
        if self.net is None:
            return {}
        fake = self.net.scores(sum(s["fake"] for s in states))
        out = {k: fake[k] for k in ("miou", "pixel_accuracy", "per_class_iou")}
        real_conf = sum(s["real"] for s in states)
        if int(real_conf.sum()) > 0:  # the real photos' score: the upper bound
            real = self.net.scores(real_conf)
            out |= {
                "real_miou": real["miou"],
                "real_pixel_accuracy": real["pixel_accuracy"],
                "real_per_class_iou": real["per_class_iou"],
            }
        return out

    def record(self) -> dict[str, Any]:
        if self.net is None:
            return {"segmenter": None}
        spec = self.net.spec
        return {
            "segmenter": {
                **self.net.record,
                "input_size": list(spec.input_size or self.ctx.spec.size),
                "label_remap": spec.label_remap is not None,
                "ignore_index": spec.ignore_index,
                "protocol": spec.protocol,
                **self.net.describe(self.ctx.spec.size),
            }
        }
