"""The metric contract and what the protocol loop hands a metric.

Life of a metric in `evaluate()`: `setup(ctx)` once per process; `update(batch)` for every batch of this
process's shard (one generated image per label map); `extra_pass(ctx)` once, for metrics that generate
images of their own (diversity); `state()` is gathered from every process; `compute(states)` on the main
process returns its numbers; `record()` returns its protocol fields (merged into the metrics file's
`protocol`); `columns` name the numbers a comparison report shows.
"""

from __future__ import annotations

import dataclasses
from typing import Any, NamedTuple

import torch
from torch import Tensor


class Column(NamedTuple):
    """A number a report shows: the metrics key, its header, and the direction that is better."""

    key: str
    header: str
    better: str  # 'lower' | 'higher'
    scale: float = 1.0  # shown multiplied by this (mIoU as %)


@dataclasses.dataclass
class EvalBatch:
    """One batch of this process's shard: item indices, label ids, encoded label map, real and fake."""

    indices: list[int]
    label: Tensor
    seg: Tensor
    real: Tensor
    fake: Tensor


@dataclasses.dataclass
class EvalContext:
    """What every metric may use: the generator, the data, the protocol settings and shared networks."""

    gan: Any
    spec: Any
    dataset: Any
    num_images: int
    split: str
    seed: int
    device: Any
    state: Any  # accelerate PartialState: num_processes, process_index, main_process_first()
    segmenter_choice: Any = "auto"  # registry name (optionally NAME:PROTOCOL), a Segmenter, 'auto' or None
    cache: Any = None  # real-feature cache folder
    batch_size: int = 16
    segmenter_options: dict | None = None  # `load_segmenter` keywords (weights=, expected_sha256=, protocol=)
    _segmenter: Any = dataclasses.field(default=None, repr=False)
    _segmenter_loaded: bool = dataclasses.field(default=False, repr=False)
    _shared: dict = dataclasses.field(default_factory=dict, repr=False)

    def shared(self, key: Any, build: Any) -> Any:
        """One object per `key` for all metrics of this evaluation (`build()` on first use): e.g. the
        DINOv2 network that both `fd_dinov2` and precision / recall on DINOv2 features need."""
        if key not in self._shared:
            self._shared[key] = build()
        return self._shared[key]

    def segmenter(self) -> Any:
        """The segmenter of this evaluation (loaded once, shared by the metrics that need it), or None."""
        if not self._segmenter_loaded:
            from condgen.eval.segmenters import load_segmenter, segmenter_for

            net = self.segmenter_choice
            if isinstance(net, str) and net.partition(":")[0] == "auto":  # 'auto' or 'auto:PROTOCOL'
                net = segmenter_for(self.dataset) + net[len("auto") :]
            if isinstance(net, str):
                # the landscape segmenter trains once (needs gradients inside no_grad), then is read
                with self.state.main_process_first(), torch.enable_grad():
                    net = load_segmenter(net, **(self.segmenter_options or {}))
            self._segmenter = net.to(self.device) if net is not None else None
            self._segmenter_loaded = True
        return self._segmenter


class Metric:
    """Base class of registered metrics (`@register("metric")`); override what the metric needs."""

    columns: tuple[Column, ...] = ()

    def setup(self, ctx: EvalContext) -> None:
        self.ctx = ctx

    def update(self, batch: EvalBatch) -> None:
        pass

    def extra_pass(self, ctx: EvalContext) -> None:
        pass

    def state(self) -> Any:
        return None

    def compute(self, states: list[Any]) -> dict[str, Any]:
        raise NotImplementedError

    def record(self) -> dict[str, Any]:
        return {}

    def meaningless(self) -> list[str]:
        """Warnings that make the numbers meaningless (random weights in tests)."""
        return []
