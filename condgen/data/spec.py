"""`DataSpec`: the facts about a dataset that fix the networks' shapes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import gin
from torch import Tensor

from condgen.data.labels import encode_labels
from condgen.data.labels import semantic_nc as _semantic_nc


@gin.configurable
@dataclass(frozen=True)
class DataSpec:
    """Shapes a dataset imposes on G, D and E.

    Args:
        label_nc: number of label classes (COCO-Stuff 182, ADE20K 150, Cityscapes 35).
        contain_dontcare_label: an extra channel for id 255 / `label_nc` (COCO, ADE20K).
        instance_edges: an instance-boundary channel last (COCO, Cityscapes).
        crop_size: output width in pixels.
        aspect_ratio: width / height (Cityscapes 2.0).
    """

    label_nc: int
    contain_dontcare_label: bool = False
    instance_edges: bool = False
    crop_size: int = 256
    aspect_ratio: float = 1.0

    @property
    def semantic_nc(self) -> int:
        return _semantic_nc(self.label_nc, self.contain_dontcare_label, self.instance_edges)

    @property
    def size(self) -> tuple[int, int]:
        """(H, W) of the images."""
        return round(self.crop_size / self.aspect_ratio), self.crop_size

    def encode(self, label: Tensor, instance: Tensor | None = None, *, source: str = "label map") -> Tensor:
        """Label ids (b, 1, H, W) or (b, H, W) -> the networks' `seg`: THE label route of condgen.

        Training (`condgen.train.setup.to_device`) and inference (`SynthesisPipeline.encode`) both call it,
        so the conventions live here once: id 255 (unlabelled) becomes the don't-care id `label_nc` when the
        dataset has that channel (datasets map it already; user label PNGs still carry 255), and a model
        with instance edges needs the instance map.
        """
        label = label.long()
        if self.contain_dontcare_label:
            label = label.masked_fill(label == 255, self.label_nc)
        if self.instance_edges and instance is None:
            raise ValueError(
                f"{source}: this model was trained with instance edges; give the instance maps "
                "(--instances DIR with files named like the label maps)"
            )
        return encode_labels(
            label,
            self.label_nc,
            contain_dontcare_label=self.contain_dontcare_label,
            instance=instance if self.instance_edges else None,
            instance_edges=self.instance_edges,
            source=source,
        )


@runtime_checkable
class SISDataset(Protocol):
    """The dataset slot (`train.dataset = @SomeDataset`): items are dicts with `label` (1, H, W) int ids,
    `image` (3, H, W) in [-1, 1], optionally `instance` and `path`; `spec` fixes the networks' shapes."""

    spec: DataSpec

    def __len__(self) -> int: ...

    def __getitem__(self, index: int) -> dict[str, Any]: ...
