"""SEAN: semantic region-adaptive normalisation (Zhu et al., CVPR 2020, Sec. 3, Fig. 2-3; the "ACE" block).

Every semantic region gets its own style code: a (b, K, S) matrix of one S-wide row per label channel
(`region_average` of the style encoder's features). An ACE layer broadcasts `relu(fc_mu_j(style_j))` over
region j, predicts (gamma, beta) from that style map with two convs, blends them with SPADE's label-only
(gamma, beta) by learned sigmoid weights, and modulates the batch-normalised activation, to which per-pixel
noise (one value per pixel, scaled per channel) was added first. Differences from the original code:
- the per-class style MLPs are one batched parameter (`PerClassLinear`, K x S x S), not 19 hand-written
  `fc_mu0..18` modules: any number of classes and any style width (the original runs <= 19 classes, S = 512);
- the style matrix is an input for every batch item (the original's editing mode edits item 0 only);
- the SPADE branch has no batch norm of its own (the original's is built, saved and never used).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import NamedTuple

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn

from condgen.blocks.condition import ConditionSource
from condgen.blocks.norm import get_param_free_norm
from condgen.blocks.spade import SPADE, SPADEResBlock
from condgen.ops.label_recompute import shared_then
from condgen.ops.layout import label_layout
from condgen.registry import register
from condgen.utils import LayerType


class StyledSeg(NamedTuple):
    """What an ACE layer is conditioned on: the label map and the per-region style matrix."""

    seg: Tensor  # (b, K, H, W) one-hot (+ don't-care / edge channels: each is a region of its own)
    style: Tensor  # (b, K, S): row j is region j's style code; rows of absent regions are ignored

    @property
    def shape(self) -> torch.Size:  # the generator picks a block's condition by its spatial size
        return self.seg.shape


def region_average(codes: Tensor, seg: Tensor) -> Tensor:
    """Per-region mean of `codes` (b, S, h, w) over each channel's region of `seg` (b, K, H, W), resized
    nearest to (h, w). Returns (b, K, S); a region empty at (h, w) gets a zero row (as the original)."""
    mask = (F.interpolate(seg, size=codes.shape[-2:], mode="nearest") != 0).to(codes.dtype)
    sums = torch.einsum("bkhw,bshw->bks", mask, codes)
    area = mask.sum((2, 3)).unsqueeze(-1)
    return sums / area.clamp(min=1)


def broadcast_regions(rows: Tensor, seg: Tensor) -> Tensor:
    """The style map: pixel p of region j gets `rows[:, j]`. rows: (b, K, S); seg: (b, K, h, w) at the
    target size. Where regions overlap the last channel wins, where none covers p the map is 0: the
    original's loop of assignments, done as one gather (cost independent of K)."""
    mask = seg != 0
    small = torch.int16 if seg.shape[1] < 2**15 else torch.int32  # 2 bytes per class and pixel, not 8
    k = torch.arange(seg.shape[1], device=seg.device, dtype=small).view(1, -1, 1, 1)
    ids = torch.where(mask, k, 0).amax(1).long()  # (b, h, w)
    picked = torch.gather(rows, 1, rearrange(ids, "b h w -> b (h w) 1").expand(-1, -1, rows.shape[2]))
    picked = picked * rearrange(mask.any(1), "b h w -> b (h w) 1").to(rows.dtype)
    return rearrange(picked, "b (h w) s -> b s h w", h=seg.shape[2])


class PerClassLinear(nn.Module):
    """K independent Linear(in_dim, out_dim) layers applied at once: `y[b, j] = W_j x[b, j] + b_j`.

    The original's `fc_mu0 .. fc_mu18` stacked along a leading class axis (weight (K, out, in)); one
    batched matmul serves any K. Memory: K * (in_dim * out_dim + out_dim) parameters.
    """

    def __init__(self, num_classes: int, in_dim: int, out_dim: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(num_classes, out_dim, in_dim))
        self.bias = nn.Parameter(torch.zeros(num_classes, out_dim))
        for w in self.weight:  # each class as an nn.Linear would be initialised (init_weights redoes it)
            nn.init.xavier_normal_(w, gain=0.02)

    def forward(self, x: Tensor) -> Tensor:
        """x: (b, K', in_dim) with K' <= K (the first K' classes) -> (b, K', out_dim)."""
        k = x.shape[1]
        return torch.einsum("bki,koi->bko", x, self.weight[:k]) + self.bias[:k]


@register("norm")
class ACE(nn.Module):
    """SEAN's normalisation: BN(x + noise) * (1 + gamma) + beta, gamma / beta blended from the regions' style
    codes and from the label map (SEAN Sec. 3.1, Eq. 1-3).

    Args:
        norm_nc: channels of the normalised activation.
        label_nc: channels of the label map; one style row and one per-class MLP per channel.
        style_dim: width S of a style code (original: 512, hard-coded); `SEANResBlock` passes the generator's.
        use_style: False = the SPADE branch only (the original's last block); the blending weights are then
            kept, frozen, only so that original checkpoints load and export key for key.
        style_classes: per-class MLPs to build (default `label_nc`); more than label_nc only to hold an
            original checkpoint's unused `fc_mu` layers (it always has 19).
        hidden, kernel_size: of the SPADE branch (original 128, 3); the style convs use kernel_size too.
        param_free: the norm of `x + noise` (original: sync batch norm, whatever `norm_G` says).
        noise: add per-pixel noise scaled per channel by `noise_var` (initialised to 0, as the original).
    """

    def __init__(
        self,
        norm_nc: int,
        label_nc: int,
        *,
        style_dim: int = 512,
        use_style: bool = True,
        style_classes: int | None = None,
        hidden: int = 128,
        kernel_size: int = 3,
        param_free: LayerType = "syncbatch",
        noise: bool = True,
    ) -> None:
        super().__init__()
        self.use_style, self.style_dim = use_style, style_dim
        self.param_free_norm = get_param_free_norm(param_free)(norm_nc)
        self.spade = SPADE(norm_nc, label_nc, hidden=hidden, kernel_size=kernel_size, param_free=_no_norm)
        self.noise_var = nn.Parameter(torch.zeros(norm_nc)) if noise else None
        self.blending_gamma = nn.Parameter(torch.zeros(1), requires_grad=use_style)
        self.blending_beta = nn.Parameter(torch.zeros(1), requires_grad=use_style)
        self.fixed_noise: Tensor | None = None  # (b, 1, h, w), replaces the draw (tests, repeatable edits)
        if use_style:
            classes = style_classes or label_nc
            if classes < label_nc:
                raise ValueError(f"style_classes={classes} < label_nc={label_nc}: every class needs its MLP")
            pad = kernel_size // 2
            self.fc_mu = PerClassLinear(classes, style_dim, style_dim)
            self.conv_gamma = nn.Conv2d(style_dim, norm_nc, kernel_size, padding=pad)
            self.conv_beta = nn.Conv2d(style_dim, norm_nc, kernel_size, padding=pad)

    def draw_noise(self, x: Tensor) -> Tensor:
        """(b, 1, h, w): drawn as the original draws it, randn(b, w, h, 1) transposed, so a seed gives the
        original's noise; `fixed_noise` when set."""
        if self.fixed_noise is not None:
            return self.fixed_noise.to(x)
        b, _, h, w = x.shape
        return torch.randn(b, w, h, 1, device=x.device, dtype=x.dtype).transpose(1, 3)

    def forward(self, x: Tensor, cond: StyledSeg) -> Tensor:
        """x: (b, norm_nc, h, w); cond: label map (b, label_nc, H, W) and style matrix (b, label_nc, S)."""
        if self.noise_var is not None:
            x = x + self.draw_noise(x) * self.noise_var.view(1, -1, 1, 1)
        x_hat = self.param_free_norm(x)
        size = x.shape[-2:]
        sp = self.spade
        gamma, beta = shared_then(*sp.mlp_shared, (sp.mlp_gamma, sp.mlp_beta), cond.seg, size)
        if self.use_style:
            seg = F.interpolate(cond.seg, size=size, mode="nearest")
            style_map = broadcast_regions(F.relu(self.fc_mu(cond.style)), seg)
            a_gamma, a_beta = torch.sigmoid(self.blending_gamma), torch.sigmoid(self.blending_beta)
            gamma = a_gamma * self.conv_gamma(style_map) + (1 - a_gamma) * gamma
            beta = a_beta * self.conv_beta(style_map) + (1 - a_beta) * beta
        return x_hat * (1 + gamma) + beta


def _no_norm(channels: int) -> nn.Module:
    return nn.Identity()


@register("block")
class SEANResBlock(SPADEResBlock):
    """SPADE's residual block with ACE norms (SEAN Fig. 3), the shortcut computed first as in the original
    (so that its noise is drawn first: a seed then gives the original's noises layer by layer).

    Args:
        in_ch, out_ch, cond_nc: as `SPADEResBlock`.
        use_style: False in the original's last block (its ACEs use the label map only).
        style_dim: width of the style codes (the generator passes its own).
        norm: the ACE class (a class or partial), called as `norm(channels, cond_nc, use_style=...,
            style_dim=...)`.
        spectral: spectral norm on the convs (original `norm_G` prefix `spectral`).
    """

    def __init__(
        self,
        in_ch: int,
        out_ch: int,
        cond_nc: int,
        *,
        use_style: bool = True,
        style_dim: int = 512,
        norm: Callable[..., nn.Module] = ACE,
        spectral: bool = True,
    ) -> None:
        norm = partial(norm, use_style=use_style, style_dim=style_dim)
        super().__init__(in_ch, out_ch, cond_nc, norm=norm, spectral=spectral)

    def forward(self, x: Tensor, cond: StyledSeg) -> Tensor:  # type: ignore[override]
        x_s = self.shortcut(x, cond)
        dx = self.conv_0(F.leaky_relu(self.norm_0(x, cond), 0.2))
        dx = self.conv_1(F.leaky_relu(self.norm_1(dx, cond), 0.2))
        return x_s + dx


@register("condition")
class RegionStyleCondition(ConditionSource):
    """The label map with a per-region style matrix: every block gets `StyledSeg(seg, style)`.

    Args:
        semantic_nc: label channels of `seg` (= style rows).
        num_levels, ngf: the generator's (unused: one full-resolution map serves every block).
    """

    def __init__(self, semantic_nc: int, *, num_levels: int = 6, ngf: int = 64) -> None:
        super().__init__(semantic_nc)
        self.cond_nc = semantic_nc
        self.num_levels = num_levels

    def block_conditions(self, labels: Tensor, z: Tensor | None = None) -> list[StyledSeg]:
        if z is None or z.dim() != 3 or z.shape[:2] != labels.shape[:2]:
            got = None if z is None else tuple(z.shape)
            raise ValueError(
                f"a region-style generator needs a style matrix (b, {labels.shape[1]}, style_dim) for a "
                f"batch of {labels.shape[0]}, got {got}; encode one from an image with "
                "`G.encode_style(img, seg)`"
            )
        label_layout(labels, what="the label map")  # ids found once per forward, shared by every layer
        return [StyledSeg(labels, z)]

    def forward(self, labels: Tensor) -> list[Tensor]:
        raise TypeError("RegionStyleCondition needs the style matrix: call block_conditions(labels, style)")
