"""The blocks of SDM (Wang et al., "Semantic Image Synthesis via Diffusion Models", 2022, Sec. 3.2, Fig. 3).

SDM's UNet is guided-diffusion's with the label map fed to the middle and decoder blocks only:

- `timestep_embedding`: sinusoidal features of the integer timestep, **cos first**, computed in float32;
- `ResBlock`: the encoder block (group norm, SiLU, conv; timestep FiLM `h * (1 + scale) + shift` after the
  second norm), optionally down-sampling by 2x2 average pooling; it never sees the label map;
- `SDMResBlock`: the same with both norms replaced by SPADE group norms (condgen's `SPADE` with a 32-group
  param-free group norm: the same maths as the original's SPADE group norm), optionally up-sampling by
  nearest x2;
- `AttentionBlock`: self-attention over positions with the original's legacy head layout (each head owns a
  contiguous block of q, k, v channels).

Differences from the original code: the SPADE shared conv reads the one-hot label map label-sparse
(`condgen.ops.label_conv`: same numbers up to fp32 round-off, far cheaper with COCO-Stuff's 184 channels);
the affine group norms compute in float32 under autocast, as the original's (its SPADE group norm does not,
ours follows autocast's fp32 list too, a difference only with fp16). Module names are the original's
(`in_layers`, `emb_layers`, `out_layers`, `skip_connection`, `in_norm`, `out_norm`, `qkv`, `proj_out`), so
released checkpoints load by key.
"""

from __future__ import annotations

import math
from functools import partial

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn

from condgen.blocks.spade import SPADE
from condgen.registry import register

GROUPS = 32  # the original's group count everywhere (widths must be multiples of 32)


def timestep_embedding(t: Tensor, dim: int, max_period: float = 10000.0) -> Tensor:
    """Sinusoidal timestep features (b, dim): [cos(t f_k), sin(t f_k)], f_k = exp(-ln(max_period) k / half).

    Computed in float32 whatever the model's dtype, as the original (bitwise the same numbers); an odd `dim`
    gets one zero column.
    """
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32, device=t.device) / half)
    args = t[:, None].float() * freqs[None]
    emb = torch.cat([torch.cos(args), torch.sin(args)], dim=-1)
    return F.pad(emb, (0, 1)) if dim % 2 else emb


class GroupNorm32(nn.GroupNorm):
    """The affine 32-group norm of the encoder, attention and output head, computed in float32."""

    def __init__(self, channels: int) -> None:
        super().__init__(GROUPS, channels)

    def forward(self, x: Tensor) -> Tensor:
        low = x.dtype in (torch.float16, torch.bfloat16)  # float64 models stay float64
        return super().forward(x.float() if low else x).type(x.dtype)


# the SPADE group norm: condgen's SPADE with a 32-group, affine-free group norm (hidden width: the block's)
spade_group_norm = partial(SPADE, kernel_size=3, param_free=partial(nn.GroupNorm, GROUPS, affine=False))


def _resample(x: Tensor, how: str | None) -> Tensor:
    if how == "down":
        return F.avg_pool2d(x, kernel_size=2, stride=2)
    if how == "up":
        return F.interpolate(x, scale_factor=2, mode="nearest")
    return x


class EmbedBlock(nn.Module):
    """A block called as `block(x, emb, y)` (timestep embedding, label map); the UNet passes both to it."""

    def forward(self, x: Tensor, emb: Tensor, y: Tensor) -> Tensor:  # pragma: no cover - interface
        raise NotImplementedError


class _FiLMBlock(EmbedBlock):
    """What both residual blocks share: the timestep FiLM, the skip path and the resampling choice."""

    def __init__(self, in_ch: int, out_ch: int, emb_dim: int, resample: str | None) -> None:
        super().__init__()
        if resample not in (None, "up", "down"):
            raise ValueError(f"resample must be None, 'up' or 'down', got {resample!r}")
        self.resample = resample
        self.emb_layers = nn.Sequential(nn.SiLU(), nn.Linear(emb_dim, 2 * out_ch))
        self.skip_connection = nn.Identity() if in_ch == out_ch else nn.Conv2d(in_ch, out_ch, 1)

    def film(self, h: Tensor, emb: Tensor) -> tuple[Tensor, Tensor]:
        """(scale, shift), each (b, out_ch, 1, 1): the first half of the projected embedding is the scale."""
        scale, shift = rearrange(self.emb_layers(emb).type(h.dtype), "b c -> b c 1 1").chunk(2, dim=1)
        return scale, shift


@register("block")
class ResBlock(_FiLMBlock):
    """Encoder residual block: `skip(x) + conv(SiLU(GN(conv(SiLU(GN(x)))) * (1 + scale) + shift))`.

    Args:
        in_ch, out_ch: channels in and out (multiples of 32).
        emb_dim: width of the timestep embedding.
        resample: None, or 'down' (2x2 average pooling after the first SiLU and on the skip path).
        dropout: before the last conv (original default 0).
    """

    def __init__(
        self, in_ch: int, out_ch: int, emb_dim: int, *, resample: str | None = None, dropout: float = 0.0
    ) -> None:
        super().__init__(in_ch, out_ch, emb_dim, resample)
        self.in_layers = nn.Sequential(GroupNorm32(in_ch), nn.SiLU(), nn.Conv2d(in_ch, out_ch, 3, padding=1))
        self.out_layers = nn.Sequential(
            GroupNorm32(out_ch), nn.SiLU(), nn.Dropout(dropout), nn.Conv2d(out_ch, out_ch, 3, padding=1)
        )

    def forward(self, x: Tensor, emb: Tensor, y: Tensor | None = None) -> Tensor:
        norm, act, conv = self.in_layers
        h = conv(_resample(act(norm(x)), self.resample))
        x = _resample(x, self.resample)
        norm, act, drop, conv = self.out_layers
        scale, shift = self.film(h, emb)
        return self.skip_connection(x) + conv(drop(act(norm(h) * (1 + scale) + shift)))


@register("block")
class SDMResBlock(_FiLMBlock):
    """Middle / decoder residual block: ResBlock with both group norms replaced by SPADE group norms of `y`.

    `h = conv(SiLU(SPADE_in(x, y)))` (nearest x2 before the conv and on the skip path for 'up'), then
    `skip(x) + conv(SiLU(SPADE_out(h, y) * (1 + scale) + shift))`. y enters at full resolution; each SPADE
    resizes it to its input with nearest (the original's legacy nearest).

    Args:
        in_ch, out_ch: channels in and out (multiples of 32).
        emb_dim: width of the timestep embedding.
        cond_nc: channels of the label map y (one-hot + instance edge).
        resample: None, or 'up'.
        dropout: before the last conv.
        hidden: width of the SPADE group norms' shared conv (the original: 128, hard-coded).
    """

    def __init__(
        self,
        in_ch: int,
        out_ch: int,
        emb_dim: int,
        cond_nc: int,
        *,
        resample: str | None = None,
        dropout: float = 0.0,
        hidden: int = 128,
    ) -> None:
        super().__init__(in_ch, out_ch, emb_dim, resample)
        self.in_norm = spade_group_norm(in_ch, cond_nc, hidden=hidden)
        self.in_layers = nn.Sequential(nn.SiLU(), nn.Conv2d(in_ch, out_ch, 3, padding=1))
        self.out_norm = spade_group_norm(out_ch, cond_nc, hidden=hidden)
        self.out_layers = nn.Sequential(
            nn.SiLU(), nn.Dropout(dropout), nn.Conv2d(out_ch, out_ch, 3, padding=1)
        )

    def forward(self, x: Tensor, emb: Tensor, y: Tensor) -> Tensor:
        act, conv = self.in_layers
        h = conv(_resample(act(self.in_norm(x, y)), self.resample))
        x = _resample(x, self.resample)
        scale, shift = self.film(h, emb)
        return self.skip_connection(x) + self.out_layers(self.out_norm(h, y) * (1 + scale) + shift)


@register("block")
class AttentionBlock(EmbedBlock):
    """Self-attention over the h*w positions: `x + proj_out(attention(qkv(GN(x))))`, in the legacy head order.

    qkv's 3C output channels are read as (heads, [q | k | v], head_ch), and q, k are both scaled by
    head_ch^(-1/4); the softmax over keys runs in float32.

    Args:
        channels: C (a multiple of 32).
        head_channels: channels per head (heads = C / head_channels), or -1 to use `num_heads`.
        num_heads: heads when head_channels is -1.
    """

    def __init__(self, channels: int, *, head_channels: int = 64, num_heads: int = 1) -> None:
        super().__init__()
        if head_channels != -1:
            if channels % head_channels:
                raise ValueError(
                    f"attention: {channels} channels are not divisible by head_channels "
                    f"{head_channels}; choose a divisor (SDMUNet.num_head_channels)"
                )
            num_heads = channels // head_channels
        self.num_heads = num_heads
        self.norm = GroupNorm32(channels)
        self.qkv = nn.Conv1d(channels, 3 * channels, 1)
        self.proj_out = nn.Conv1d(channels, channels, 1)

    def forward(self, x: Tensor, emb: Tensor | None = None, y: Tensor | None = None) -> Tensor:
        b, c, hh, ww = x.shape
        x_flat = rearrange(x, "b c h w -> b c (h w)")
        qkv = rearrange(self.qkv(self.norm(x_flat)), "b (heads c) t -> (b heads) c t", heads=self.num_heads)
        q, k, v = qkv.chunk(3, dim=1)
        scale = 1 / math.sqrt(math.sqrt(q.shape[1]))
        w = torch.einsum("bct,bcs->bts", q * scale, k * scale)
        w = torch.softmax(w.float(), dim=-1).type(w.dtype)
        a = rearrange(
            torch.einsum("bts,bcs->bct", w, v), "(b heads) c t -> b (heads c) t", heads=self.num_heads
        )
        return rearrange(x_flat + self.proj_out(a), "b c (h w) -> b c h w", h=hh, w=ww)
