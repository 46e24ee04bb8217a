"""The conditional generator skeleton shared by SPADE and CC-FPSE (SPADE Fig. 4/12, CC-FPSE Fig. 2).

A latent (VAE / random input) or the nearest-downsampled label map enters `fc` at 1/2^num_up of the
output size; seven residual blocks (the channel schedule below) upsample it by nearest x2 to the output;
`conv_img` + tanh gives the image. The residual block and the condition source are arguments, so SPADE,
SPADE w/ FP, CC w/o FP and CC w/ FP (CC-FPSE Table 2) are all this one class. Module names follow the
official checkpoints (`fc`, `head_0`, `G_middle_0/1`, `up_0..4`, `conv_img`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn

from condgen.blocks.condition import LabelMapCondition, select_condition
from condgen.networks.init import init_weights
from condgen.registry import register

# The channel schedule, stated once: (module name, in x ngf, out x ngf, nearest-upsample before it).
BLOCKS: tuple[tuple[str, float, float, bool], ...] = (
    ("head_0", 16, 16, False),
    ("G_middle_0", 16, 16, True),
    ("G_middle_1", 16, 16, False),  # 'more'/'most' upsample here too
    ("up_0", 16, 8, True),
    ("up_1", 8, 4, True),
    ("up_2", 4, 2, True),
    ("up_3", 2, 1, True),
)
NUM_UP = {"normal": 5, "more": 6, "most": 7}


def block_schedule(num_upsampling_layers: str) -> list[tuple[str, float, float, bool]]:
    """The residual blocks for `normal` (5 upsamplings), `more` (6) or `most` (7, adds `up_4`)."""
    if num_upsampling_layers not in NUM_UP:
        raise ValueError(
            f"num_upsampling_layers={num_upsampling_layers!r}; choose one of {', '.join(NUM_UP)}"
        )
    sched = list(BLOCKS)
    if num_upsampling_layers in ("more", "most"):
        sched[2] = ("G_middle_1", 16, 16, True)
    if num_upsampling_layers == "most":
        sched.append(("up_4", 1, 0.5, True))
    return sched


def latent_size(crop_size: int, aspect_ratio: float, num_upsampling_layers: str) -> tuple[int, int]:
    """(sh, sw): the spatial size `fc` produces (official `compute_latent_vector_size`)."""
    num_up = NUM_UP[num_upsampling_layers]
    sw = crop_size // 2**num_up
    sh = round(sw / aspect_ratio)
    if sw < 1 or sh < 1:
        raise ValueError(
            f"crop_size={crop_size} with aspect_ratio={aspect_ratio} is too small for "
            f"num_upsampling_layers={num_upsampling_layers!r} ({num_up} x2 upsamplings): the latent "
            f"would be {sh}x{sw}; use crop_size >= {2**num_up * max(1, round(aspect_ratio))}"
        )
    want, out = (round(crop_size / aspect_ratio), crop_size), (sh * 2**num_up, sw * 2**num_up)
    if out != want:
        # The official code builds this generator too, and then fails at the losses with a shape mismatch.
        raise ValueError(
            f"crop_size={crop_size}, aspect_ratio={aspect_ratio} ask for {want[0]}x{want[1]} images, but "
            f"num_upsampling_layers={num_upsampling_layers!r} ({num_up} x2 upsamplings) can only make "
            f"{out[0]}x{out[1]}; both sides must be multiples of {2**num_up}"
        )
    return sh, sw


@register("generator")
class Generator(nn.Module):
    """Label map (+ optional latent z) -> image in [-1, 1].

    Args:
        semantic_nc: label channels of `seg` (one-hot + don't-care + instance edge).
        crop_size: output width; the output is (crop_size / aspect_ratio) x crop_size.
        aspect_ratio: width / height.
        ngf: base width; the blocks have 16, 16, 16, 8, 4, 2, 1 x ngf output channels.
        z_dim: latent size when `use_vae`.
        use_vae: True: `fc` maps a latent z (the VAE encoder's, or N(0, I) when none is given),
            the official `--use_vae`; False: `fc` convolves the nearest-downsampled label map.
        num_upsampling_layers: 'normal' | 'more' (Cityscapes) | 'most'.
        block: residual block class, called as `block(in_ch, out_ch, cond_nc)`.
        condition: condition source class, called as `condition(semantic_nc, num_levels=..., ngf=ngf)`.
    """

    def __init__(
        self,
        semantic_nc: int,
        *,
        crop_size: int = 256,
        aspect_ratio: float = 1.0,
        ngf: int = 64,
        z_dim: int = 256,
        use_vae: bool = False,
        num_upsampling_layers: str = "normal",
        block: type[nn.Module] | None = None,
        condition: type[nn.Module] = LabelMapCondition,
    ) -> None:
        super().__init__()
        if block is None:
            from condgen.blocks.spade import SPADEResBlock

            block = SPADEResBlock
        self.semantic_nc, self.z_dim, self.use_vae = semantic_nc, z_dim, use_vae
        self.schedule = block_schedule(num_upsampling_layers)
        self.sh, self.sw = latent_size(crop_size, aspect_ratio, num_upsampling_layers)
        self.condition = condition(semantic_nc, num_levels=NUM_UP[num_upsampling_layers] + 1, ngf=ngf)
        top = 16 * ngf
        if use_vae:
            self.fc = nn.Linear(z_dim, top * self.sh * self.sw)
        else:
            self.fc = nn.Conv2d(semantic_nc, top, 3, padding=1)
        for name, m_in, m_out, _ in self.schedule:
            self.add_module(name, block(int(m_in * ngf), int(m_out * ngf), self.condition.cond_nc))
        self.conv_img = nn.Conv2d(int(self.schedule[-1][2] * ngf), 3, 3, padding=1)
        init_weights(self)

    def forward(self, seg: Tensor, z: Tensor | None = None) -> Tensor:
        """seg: (b, semantic_nc, H, W) one-hot; z: (b, z_dim) or None. Returns (b, 3, H, W)."""
        if seg.shape[1] != self.semantic_nc:
            raise ValueError(
                f"label map has {seg.shape[1]} channels, generator expects {self.semantic_nc} "
                "(label_nc + don't-care + instance edge); check the dataset's gin file"
            )
        if self.use_vae:
            if z is None:
                z = torch.randn(seg.shape[0], self.z_dim, device=seg.device, dtype=seg.dtype)
            x = rearrange(self.fc(z), "b (c h w) -> b c h w", h=self.sh, w=self.sw)
        else:
            x = self.fc(F.interpolate(seg, size=(self.sh, self.sw), mode="nearest"))
        conds = self.condition(seg)
        for name, _, _, upsample in self.schedule:
            if upsample:
                x = F.interpolate(x, scale_factor=2, mode="nearest")
            x = getattr(self, name)(x, select_condition(conds, x.shape[-2:]))
        return torch.tanh(self.conv_img(F.leaky_relu(x, 0.2)))
