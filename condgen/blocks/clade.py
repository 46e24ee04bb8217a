"""CLADE: class-adaptive normalisation (CLADE, TPAMI 2021, Sec. 3.2-3.3), its ICPE condition and its block.

`CLADE(x) = x_hat * gamma[k] + beta[k]`: a parameter-free norm, then a per-class affine looked up in two
(classes x channels) tables by the class id k of each pixel (the label map nearest-resized to x). No
convolution reads the label map, so the layer costs a gather, not SPADE's three convs. How it differs from
SPADE's layer, as the original (tzt101/CLADE, `--norm_mode clade`) has it:
- no "1 +" on gamma: `x_hat * gamma + beta` (the gamma table starts U(0, 1), beta at 0);
- with instance edges (`instance_edge`), the edge map does not enter the modulation: a 1x1 conv of it
  (`inst_conv`) is appended as one extra channel after the layer, so the conv after each CLADE layer reads
  C + 1 channels (the residual block builds its convs from `extra_channels`);
- with ICPE (`icpe`), two 1x1 convs of the 2-channel intra-class positional map d (`ICPECondition`)
  scale both tables: gamma * (1 + conv_w(d)), beta * (1 + conv_b(d)), one channel broadcast over all C
  (so a class whose beta is 0 gets no positional bias).
The class ids come from `condgen.ops.label_conv.label_ids`: from the label map's layout when it has one (ids
resized per size, shared by every layer), which is the 'auto' path, else by argmax of the resized one-hot
map. Module names (`param_free_norm`, `class_specified_affine.{weight, bias, dist_conv_w, dist_conv_b}`,
`inst_conv`) are the original's, so checkpoints load by key.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from condgen.blocks.condition import ConditionSource
from condgen.blocks.norm import get_param_free_norm
from condgen.blocks.spade import SPADEResBlock
from condgen.ops.label_conv import cat_labels, label_ids
from condgen.ops.positional import intra_class_positions
from condgen.registry import register
from condgen.utils import LayerType


class ClassAffine(nn.Module):
    """The per-class tables (original `ClassAffine`): gamma, beta of shape (num_classes, channels).

    Args:
        num_classes: rows (label channels, without the instance-edge channel).
        channels: columns (the normalised activation's channels).
        icpe: add the two 1x1 convs (2 -> 1) that scale gamma and beta by the positional map.
    """

    def __init__(self, num_classes: int, channels: int, *, icpe: bool = False) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(num_classes, channels).uniform_(0, 1))  # the original's init
        self.bias = nn.Parameter(torch.zeros(num_classes, channels))
        if icpe:
            # declared zero-initialised in the original, but its network-wide xavier init overwrites them
            self.dist_conv_w = nn.Conv2d(2, 1, 1)
            self.dist_conv_b = nn.Conv2d(2, 1, 1)
        self.icpe = icpe

    def forward(self, ids: Tensor, dist: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """ids (b, h, w) int64; dist (b, 2, h, w) with ICPE. Returns gamma, beta (b, channels, h, w)."""
        gamma = F.embedding(ids, self.weight).permute(0, 3, 1, 2)
        beta = F.embedding(ids, self.bias).permute(0, 3, 1, 2)
        if self.icpe:
            gamma = gamma * (1 + self.dist_conv_w(dist))
            beta = beta * (1 + self.dist_conv_b(dist))
        return gamma, beta


@register("norm")
class CLADE(nn.Module):
    """Class-adaptive normalisation: `x_hat * gamma[k] + beta[k]` (+ an instance-edge channel).

    Args:
        norm_nc: channels of the normalised activation.
        label_nc: channels of the condition map: label channels, then the instance edge (`instance_edge`),
            then the 2 positional channels (`icpe`).
        instance_edge: the last label channel is the instance-edge map (COCO-Stuff, Cityscapes): it is not a
            class; a 1x1 conv of it is appended as channel norm_nc + 1 of the output.
        icpe: the condition ends with the intra-class positional map (`ICPECondition`); adds the two 1x1
            convs that scale the tables (CLADE-ICPE).
        param_free: 'batch' | 'syncbatch' | 'instance' (original default: 'syncbatch').
    """

    def __init__(
        self,
        norm_nc: int,
        label_nc: int,
        *,
        instance_edge: bool = False,
        icpe: bool = False,
        param_free: LayerType = "syncbatch",
    ) -> None:
        super().__init__()
        self.num_classes = label_nc - int(instance_edge) - 2 * int(icpe)
        if self.num_classes < 1:
            raise ValueError(f"CLADE: {label_nc} condition channels leave no class channel "
                             f"(instance_edge={instance_edge}, icpe={icpe})")
        self.label_nc, self.instance_edge, self.icpe = label_nc, instance_edge, icpe
        self.extra_channels = int(instance_edge)  # what the next conv reads beyond norm_nc
        self.param_free_norm = get_param_free_norm(param_free)(norm_nc)
        self.class_specified_affine = ClassAffine(self.num_classes, norm_nc, icpe=icpe)
        if instance_edge:
            self.inst_conv = nn.Conv2d(1, 1, 1)

    def forward(self, x: Tensor, seg: Tensor) -> Tensor:
        """x: (b, norm_nc, h, w); seg: (b, label_nc, H, W). Returns (b, norm_nc + extra_channels, h, w)."""
        if seg.shape[1] != self.label_nc:
            raise ValueError(
                f"CLADE built for {self.label_nc} condition channels got {seg.shape[1]}; with ICPE the "
                "generator's condition must be @ICPECondition (and CLADE.icpe = True), without it not"
            )
        size = x.shape[-2:]
        k = self.num_classes
        dist = None
        if self.icpe:
            dist = F.interpolate(seg[:, -2:], size=size, mode="nearest")
        gamma, beta = self.class_specified_affine(label_ids(seg, size, num_labels=k), dist)
        out = self.param_free_norm(x) * gamma + beta
        if self.instance_edge:
            edge = F.interpolate(seg[:, k : k + 1], size=size, mode="nearest")
            out = torch.cat([out, self.inst_conv(edge)], 1)
        return out


@register("block")
class CLADEResBlock(SPADEResBlock):
    """SPADE's residual block with CLADE norms (the original CLADE generator's block).

    The convs after each norm read the norm's extra instance-edge channel (`CLADE.instance_edge`).

    Args:
        in_ch, out_ch, cond_nc: as `SPADEResBlock`.
        norm: the class-adaptive norm class (a `partial` of `CLADE` with `icpe=True` for CLADE-ICPE).
        spectral: spectral norm on conv_0, conv_1 and conv_s (original `norm_G` prefix `spectral`).
    """

    def __init__(
        self, in_ch: int, out_ch: int, cond_nc: int, *, norm: Callable[..., nn.Module] = CLADE,
        spectral: bool = True,
    ) -> None:
        super().__init__(in_ch, out_ch, cond_nc, norm=norm, spectral=spectral)


@register("condition")
class ICPECondition(ConditionSource):
    """CLADE-ICPE's condition: the label map with its intra-class positional map appended (2 channels).

    `fc` reads the label map alone (as the original); every CLADE layer reads [label map; d], d computed
    here from the class ids (`condgen.ops.positional`) at the label map's resolution, so converted models
    and new label maps need no precomputed distance files.

    Args:
        semantic_nc: label channels of `seg` (classes, then the instance edge if any).
        num_levels, ngf: the generator's (unused: one full-resolution map serves every block).
        skip_label: the class channel left without positions; the original skips value 0 (right for ADE20K
            and Cityscapes; on COCO-Stuff that is "person", kept for parity). None maps every class.
    """

    def __init__(self, semantic_nc: int, *, num_levels: int = 6, ngf: int = 64,
                 skip_label: int | None = 0) -> None:
        super().__init__(semantic_nc)
        self.cond_nc = semantic_nc + 2
        self.num_levels, self.skip_label = num_levels, skip_label

    def forward(self, seg: Tensor) -> list[Tensor]:
        # argmax over every channel: an instance edge (after the classes) never wins a tie with a class
        dist = intra_class_positions(label_ids(seg), skip=self.skip_label).to(seg.dtype)
        return [cat_labels(seg, dist)]
