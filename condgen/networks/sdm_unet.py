"""The SDM denoising UNet (Wang et al. 2022, Sec. 3.2): guided-diffusion's UNet, label map in the decoder.

`unet(x_t, t, y) -> (b, 6, H, W)`: channels 0-2 predict the noise epsilon, channels 3-5 the variance
interpolation value v (learned variance). The encoder (`input_blocks`: `ResBlock` + attention) sees only x_t
and t; the middle block and the decoder (`SDMResBlock`, whose norms are SPADE group norms of y) see y at full
resolution. Skips are pushed after every encoder block (the first conv too) and concatenated *after* the
decoder feature. The architecture is data: `model_channels x channel_mult` per level, `num_res_blocks` per
level (decoder: one more), attention at the listed resolutions (`image_size / resolution` = the down-sampling
factor). Module names are the original's, so released checkpoints load by key (`condgen.convert.sdm`).

Paper sizes (256 px, model_channels 256, channel_mult (1, 1, 2, 2, 4, 4), 2 blocks, attention at 32, 16, 8,
64 channels per head): 660,608,518 parameters with ADE20K's 151 channels, 662,509,318 with COCO-Stuff's 184.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial

import torch
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from condgen.blocks.sdm import (
    AttentionBlock,
    EmbedBlock,
    GroupNorm32,
    ResBlock,
    SDMResBlock,
    timestep_embedding,
)
from condgen.registry import register

# guided-diffusion's default width multipliers per image size (the short side)
CHANNEL_MULT = {512: (0.5, 1, 1, 2, 2, 4, 4), 256: (1, 1, 2, 2, 4, 4), 128: (1, 1, 2, 3, 4), 64: (1, 2, 3, 4)}


class EmbedSequential(nn.Sequential):
    """Layers run in order; `EmbedBlock`s get the timestep embedding and the label map, the others x only."""

    def forward(self, x: Tensor, emb: Tensor, y: Tensor) -> Tensor:  # type: ignore[override]
        for layer in self:
            x = layer(x, emb, y) if isinstance(layer, EmbedBlock) else layer(x)
        return x


@register("generator")
class SDMUNet(nn.Module):
    """SDM's denoiser: `unet(x_t, t, y)`, x_t (b, 3, H, W), integer timesteps t (b,), y (b, cond_nc, H, W).

    Args:
        cond_nc: label-map channels (one-hot + instance edge; `DataSpec.semantic_nc`).
        crop_size, aspect_ratio: the dataset's crop (width, width / height); its short side is `image_size`,
            which attention resolutions and the default channel_mult refer to (256, also for 256 x 512).
        model_channels: base width (paper: 256).
        channel_mult: width multiplier per level; None = guided-diffusion's default for the image size.
        num_res_blocks: encoder blocks per level (decoder: one more).
        attention_resolutions: feature-map sizes (image_size / 2^level) that get attention (paper: 32, 16, 8).
        num_head_channels: channels per attention head (paper: 64); -1 = use `num_heads` heads.
        num_heads: heads when num_head_channels is -1.
        spade_hidden: width of every SPADE group norm's shared conv (the original: 128).
        dropout: in every residual block (paper: 0).
        learn_sigma: predict the variance too (6 output channels); False: epsilon only (3).
        use_checkpoint: gradient checkpointing of every block in training (less memory, ~30% more compute).
        noise_schedule, diffusion_steps: the diffusion process it is trained on (SDM: 'linear', 1000).
        sample_steps, sample_method, guidance: how it samples unless told otherwise (`condgen synthesize
            --steps`, the pipeline's `steps=`): the README's 1000 'ddpm' steps; guidance scale s (1.5 for a
            model fine-tuned with label drop; <= 1: no guidance).
    The process and sampler are attributes saved in the run's config, so a loaded model samples as trained.
    """

    latent_kind = "diffusion"  # sampled by condgen.infer's diffusion kind (seeded noise per image, steps)

    def __init__(self, cond_nc: int, *, crop_size: int = 256, aspect_ratio: float = 1.0,
                 model_channels: int = 256, channel_mult: Sequence[float] | None = None,
                 num_res_blocks: int = 2, attention_resolutions: Sequence[int] = (32, 16, 8),
                 num_head_channels: int = 64, num_heads: int = 4, spade_hidden: int = 128,
                 dropout: float = 0.0,
                 learn_sigma: bool = True, use_checkpoint: bool = False, noise_schedule: str = "linear",
                 diffusion_steps: int = 1000, sample_steps: int = 1000, sample_method: str = "ddpm",
                 guidance: float = 1.0) -> None:
        super().__init__()
        self.noise_schedule, self.diffusion_steps = noise_schedule, diffusion_steps
        self.sample_steps, self.sample_method, self.guidance = sample_steps, sample_method, guidance
        height = round(crop_size / aspect_ratio)
        self.image_size = image_size = min(crop_size, height)
        if channel_mult is None:
            if image_size not in CHANNEL_MULT:
                raise ValueError(
                    f"SDMUNet: no default channel_mult for image size {image_size}; bind "
                    f"SDMUNet.channel_mult (defaults exist for {sorted(CHANNEL_MULT)})"
                )
            channel_mult = CHANNEL_MULT[image_size]
        self.cond_nc, self.use_checkpoint = cond_nc, use_checkpoint
        self.out_channels = 6 if learn_sigma else 3
        self.levels = len(channel_mult)
        attention_ds = {image_size // r for r in attention_resolutions}
        emb_dim = 4 * model_channels
        attention = dict(head_channels=num_head_channels, num_heads=num_heads)
        sdm_block = partial(SDMResBlock, emb_dim=emb_dim, cond_nc=cond_nc, dropout=dropout,
                            hidden=spade_hidden)
        self.time_embed = nn.Sequential(
            nn.Linear(model_channels, emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim)
        )

        ch = int(channel_mult[0] * model_channels)
        self.input_blocks = nn.ModuleList([EmbedSequential(nn.Conv2d(3, ch, 3, padding=1))])
        skips, ds = [ch], 1
        for level, mult in enumerate(channel_mult):
            for _ in range(num_res_blocks):
                out = int(mult * model_channels)
                layers: list[nn.Module] = [ResBlock(ch, out, emb_dim, dropout=dropout)]
                if ds in attention_ds:
                    layers.append(AttentionBlock(out, **attention))
                self.input_blocks.append(EmbedSequential(*layers))
                ch = out
                skips.append(ch)
            if level != len(channel_mult) - 1:
                self.input_blocks.append(
                    EmbedSequential(ResBlock(ch, ch, emb_dim, resample="down", dropout=dropout))
                )
                skips.append(ch)
                ds *= 2

        self.middle_block = EmbedSequential(
            sdm_block(ch, ch),
            AttentionBlock(ch, **attention),
            sdm_block(ch, ch),
        )

        self.output_blocks = nn.ModuleList()
        for level, mult in reversed(list(enumerate(channel_mult))):
            for i in range(num_res_blocks + 1):
                out = int(mult * model_channels)
                layers = [sdm_block(ch + skips.pop(), out)]
                ch = out
                if ds in attention_ds:
                    layers.append(AttentionBlock(ch, **attention))
                if level and i == num_res_blocks:
                    layers.append(sdm_block(ch, ch, resample="up"))
                    ds //= 2
                self.output_blocks.append(EmbedSequential(*layers))
        self.out = nn.Sequential(GroupNorm32(ch), nn.SiLU(), nn.Conv2d(ch, self.out_channels, 3, padding=1))

    def check_inputs(self, x: Tensor, t: Tensor, y: Tensor) -> None:
        factor = 2 ** (self.levels - 1)
        if x.shape[-1] % factor or x.shape[-2] % factor:
            raise ValueError(
                f"SDMUNet: image size {tuple(x.shape[-2:])} must be divisible by {factor} "
                f"({self.levels} levels); change the crop or SDMUNet.channel_mult"
            )
        if y.shape[1] != self.cond_nc or y.shape[-2:] != x.shape[-2:]:
            raise ValueError(
                f"SDMUNet: label map of shape {tuple(y.shape)}, expected {self.cond_nc} channels "
                f"(one-hot + instance edge) at the image size {tuple(x.shape[-2:])}; check the "
                "dataset's gin file"
            )
        if t.shape != (x.shape[0],):
            raise ValueError(f"SDMUNet: timesteps of shape {tuple(t.shape)}, expected ({x.shape[0]},)")

    def _run(self, block: EmbedSequential, h: Tensor, emb: Tensor, y: Tensor) -> Tensor:
        if self.use_checkpoint and self.training and torch.is_grad_enabled():
            return checkpoint(block, h, emb, y, use_reentrant=False)
        return block(h, emb, y)

    def forward(self, x: Tensor, t: Tensor, y: Tensor) -> Tensor:
        """x: noisy image (b, 3, H, W); t: integer timesteps (b,) (original indices); y: label map."""
        self.check_inputs(x, t, y)
        emb = self.time_embed(timestep_embedding(t, self.time_embed[0].in_features))
        skips = []
        h = x.type(self.out[-1].weight.dtype)
        for block in self.input_blocks:
            h = self._run(block, h, emb, y)
            skips.append(h)
        h = self._run(self.middle_block, h, emb, y)
        for block in self.output_blocks:
            h = self._run(block, torch.cat([h, skips.pop()], dim=1), emb, y)
        return self.out(h.type(x.dtype))
