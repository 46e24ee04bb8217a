"""The evaluated split: the run's dataset built for evaluation, batches of it, and per-process shards."""

from __future__ import annotations

import inspect
from typing import Any

import torch
from torch import Tensor

GENERATED_SPLIT = 500  # validation images of a generated dataset (no natural size) unless num_images says


def shard(n: int, num_processes: int, process_index: int) -> range:
    """This process's contiguous slice of 0..n-1; slices differ in size by at most one, none repeats."""
    per, extra = divmod(n, num_processes)
    start = process_index * per + min(process_index, extra)
    return range(start, start + per + (process_index < extra))


def eval_dataset(spec: Any, *, dataset: Any = None, split: str = "val", num_images: int | None = None) -> Any:
    """The run's dataset class (gin `train.dataset`, or `dataset`) built for `split` without augmentation.

    Built inside the gin scope `eval`, so `eval/SyntheticLandscapes.length = 500` style bindings apply.
    """
    import gin

    from condgen.registry import get

    if dataset is None:
        try:
            ref = gin.query_parameter("train.dataset")
        except ValueError:
            raise ValueError(
                "the run's config binds no train.dataset (a converted official checkpoint?); "
                "pass dataset= / --dataset NAME and its bindings, e.g. \"CocoStuff.root = '...'\""
            ) from None
        dataset = ref.selector.split(".")[-1]
    cls = get(dataset, "dataset").cls if isinstance(dataset, str) else dataset
    params = inspect.signature(inspect.unwrap(cls.__init__)).parameters
    kwargs: dict[str, Any] = {"split": split}
    if "flip" in params:
        kwargs["flip"] = False
    if "length" in params:  # a generated dataset: exactly the requested number of items
        kwargs["length"] = num_images if num_images is not None else GENERATED_SPLIT
    with gin.config_scope("eval"):
        ds = cls(**kwargs)
    got = ds.spec
    if (got.semantic_nc, got.size) != (spec.semantic_nc, spec.size):
        raise ValueError(
            f"the {split} dataset {ds!r} gives {got.semantic_nc} label channels at {got.size}, the "
            f"generator expects {spec.semantic_nc} at {spec.size}; bind the dataset like the run"
        )
    return ds


def collate_items(ds: Any, indices: list[int]) -> dict[str, Tensor]:
    items = [ds[i] for i in indices]
    # `image` (the real photo) is absent when scoring generated images without their real ones
    keys = [k for k in ("label", "image", "instance", "fake") if k in items[0]]
    return {k: torch.stack([it[k] for it in items]) for k in keys}
