"""Condition sources: what each generator block (and the generator's `fc`) is conditioned on.

A condition source first forms the label input (`label_input(seg, z)`: the one-hot label map, or the map
with a latent attached, e.g. OASIS's 3-D noise), which `fc` reads nearest-downsampled (`fc_nc` channels);
then it turns that input into a list of condition maps, coarse to fine;
the generator hands each block the map whose size equals the block's resolution (or the finest one,
which the block resizes with nearest, as the official SPADE layer does). `cond_nc` is their channel
count, which the generator passes to every block.

- `LabelMapCondition` ("w/o FP" in CC-FPSE Table 2; SPADE's own input): the label map itself.
- `FeaturePyramidCondition` (`weight_pyramid.py`, "w/ FP"): label map + label feature-pyramid features.
"""

from __future__ import annotations

from torch import Tensor, nn

from condgen.ops.label_conv import label_layout
from condgen.registry import register


class ConditionSource(nn.Module):
    """The condition-source contract the generator relies on.

    Attributes:
        semantic_nc: label channels of `seg`.
        cond_nc: channels of every condition map (what each residual block is built for).
        fc_nc: channels of `label_input(...)`, which the generator's `fc` conv reads.
    Subclasses implement `forward(labels) -> list[Tensor]` (coarse to fine) and may override
    `label_input` to attach a latent (then the generator hands them z instead of its `fc`), or
    `block_conditions` to hand the blocks z with the label map (`blocks/sean.py`).
    """

    cond_nc: int

    def __init__(self, semantic_nc: int) -> None:
        super().__init__()
        self.semantic_nc = semantic_nc

    @property
    def fc_nc(self) -> int:
        return self.semantic_nc

    def label_input(self, seg: Tensor, z: Tensor | None = None) -> Tensor:
        """What `fc` and `forward` read: the label map itself (z, if any, is not this source's)."""
        return seg

    def block_conditions(self, labels: Tensor, z: Tensor | None = None) -> list:
        """What the blocks get, coarse to fine: `forward(labels)`. A source that conditions the blocks on
        the latent too (SEAN's per-region style matrix) overrides this and receives the generator's z."""
        return self(labels)


@register("condition")
class LabelMapCondition(ConditionSource):
    """The plain condition: blocks see the one-hot label map, resized with nearest by each layer.

    Args:
        semantic_nc: label channels of `seg`.
        num_levels: number of generator resolutions (unused: one full-resolution map serves all).
        ngf: the generator's base width (unused; a feature pyramid sizes itself from it).
    """

    def __init__(self, semantic_nc: int, *, num_levels: int = 6, ngf: int = 64) -> None:
        super().__init__(semantic_nc)
        self.cond_nc = semantic_nc
        self.num_levels = num_levels

    def forward(self, seg: Tensor) -> list[Tensor]:
        label_layout(seg, what="the label map")  # ids found once per forward, shared by every layer
        return [seg]


def select_condition(conds: list[Tensor], size: tuple[int, int]) -> Tensor:
    """The condition map of spatial `size`, else the finest (last) one."""
    for c in conds:
        if tuple(c.shape[-2:]) == tuple(size):
            return c
    return conds[-1]
