"""A user's metric, outside condgen: mean absolute difference between generated and real images."""

from condgen.eval.metrics import Column, Metric
from condgen.registry import register


@register("metric")
class MeanAbsDiff(Metric):
    columns = (Column("mean_abs_diff", "|fake - real|", "lower"),)

    def __init__(self, *, scale: float = 1.0) -> None:
        self.scale = scale

    def setup(self, ctx):
        super().setup(ctx)
        self.total, self.count = 0.0, 0

    def update(self, batch):
        self.total += (batch.fake - batch.real).abs().mean(dim=(1, 2, 3)).sum().item()
        self.count += len(batch.indices)

    def state(self):
        return (self.total, self.count)

    def compute(self, states):
        total, count = sum(t for t, _ in states), sum(c for _, c in states)
        return {"mean_abs_diff": self.scale * total / count, "mean_abs_diff_images": count}

    def record(self):
        return {"mean_abs_diff": {"scale": self.scale}}
