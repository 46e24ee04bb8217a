"""The conditional generator skeleton shared by SPADE, CC-FPSE and OASIS (SPADE Fig. 4/12, CC-FPSE Fig. 2).

A latent (VAE / random input) or the nearest-downsampled label input enters `fc` at 1/2^num_up of the
output size; residual blocks (a channel schedule from `SCHEDULES`) upsample it by nearest x2 to the output;
`conv_img` + tanh gives the image. Everything that differs between the papers is an argument:
- the residual block (`block`): SPADE's, CC-FPSE's conditional-convolution block, ...;
- the condition source (`condition`, `blocks/condition.py`): what the blocks and `fc` read (the label
  map, the label feature pyramid, the label map with 3-D noise);
- the schedule (`num_upsampling_layers`): a key of `SCHEDULES`, data that a new entry extends.
So SPADE, SPADE w/ FP, CC w/o FP and CC w/ FP (CC-FPSE Table 2) are one class; the named generators in
`spade_generator.py` / `ccfpse_generator.py` are presets of it. Module names follow the official
checkpoints (`fc`, `head_0`, `G_middle_0/1`, `up_0..4`, `conv_img`).
"""

from __future__ import annotations

from typing import Any, NamedTuple, Protocol, runtime_checkable

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn

from condgen.blocks.condition import ConditionSource, LabelMapCondition, select_condition
from condgen.networks.init import init_weights
from condgen.registry import register


@runtime_checkable
class ResidualBlock(Protocol):
    """The residual-block slot: built as `block(in_ch, out_ch, cond_nc)`, called as `block(x, cond)` with
    the condition map of the block's resolution (or the finest one, which the block resizes)."""

    def __call__(self, x: Tensor, cond: Tensor) -> Tensor: ...


class Stage(NamedTuple):
    """One residual block of a schedule: module name, in / out width as multiples of ngf, upsample first."""

    name: str
    in_mult: float
    out_mult: float
    upsample: bool


_SPADE_NORMAL = (
    Stage("head_0", 16, 16, False),
    Stage("G_middle_0", 16, 16, True),
    Stage("G_middle_1", 16, 16, False),
    Stage("up_0", 16, 8, True),
    Stage("up_1", 8, 4, True),
    Stage("up_2", 4, 2, True),
    Stage("up_3", 2, 1, True),
)
_SPADE_MORE = (*_SPADE_NORMAL[:2], Stage("G_middle_1", 16, 16, True), *_SPADE_NORMAL[3:])

# The channel schedules, stated once. 'normal' / 'more' / 'most' are the official --num_upsampling_layers
# (5 / 6 / 7 upsamplings); add an entry to give every generator a new one.
SCHEDULES: dict[str, tuple[Stage, ...]] = {
    "normal": _SPADE_NORMAL,
    "more": _SPADE_MORE,  # Cityscapes: G_middle_1 upsamples too
    "most": (*_SPADE_MORE, Stage("up_4", 1, 0.5, True)),
    # OASIS (Sec. 3.3, official `body.0..5`): 6 blocks, 7 widths 16,16,16,8,4,2,1 x ngf, x2 after blocks 0-4
    "oasis": (
        Stage("body_0", 16, 16, False),
        Stage("body_1", 16, 16, True),
        Stage("body_2", 16, 8, True),
        Stage("body_3", 8, 4, True),
        Stage("body_4", 4, 2, True),
        Stage("body_5", 2, 1, True),
    ),
}


def block_schedule(num_upsampling_layers: str) -> tuple[Stage, ...]:
    """The residual blocks of a schedule name (a key of `SCHEDULES`)."""
    if num_upsampling_layers not in SCHEDULES:
        raise ValueError(
            f"num_upsampling_layers={num_upsampling_layers!r}; choose one of {', '.join(SCHEDULES)} "
            "(or add an entry to condgen.networks.generator.SCHEDULES)"
        )
    return SCHEDULES[num_upsampling_layers]


def num_upsamplings(num_upsampling_layers: str) -> int:
    return sum(stage.upsample for stage in block_schedule(num_upsampling_layers))


def latent_size(crop_size: int, aspect_ratio: float, num_upsampling_layers: str) -> tuple[int, int]:
    """(sh, sw): the spatial size `fc` produces (official `compute_latent_vector_size`)."""
    num_up = num_upsamplings(num_upsampling_layers)
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
        ngf: base width; block widths are the schedule's multiples of it.
        z_dim: latent size when `use_vae`.
        use_vae: True: `fc` maps a latent z (the VAE encoder's, or N(0, I) when none is given),
            the official `--use_vae`; False: `fc` convolves the nearest-downsampled label input.
        num_upsampling_layers: the schedule, a key of `SCHEDULES`: 'normal' | 'more' (Cityscapes) | 'most'
            | 'oasis' (OASIS's 6 blocks).
        block: residual block class, called as `block(in_ch, out_ch, cond_nc)`.
        condition: condition source class, called as `condition(semantic_nc, num_levels=..., ngf=ngf)`.
        stage_options: extra block arguments for some stages, by stage name, e.g. SEAN's
            `{'up_3': {'use_style': False}}`.
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
        block: type[ResidualBlock] | None = None,
        condition: type[ConditionSource] = LabelMapCondition,
        stage_options: dict[str, dict[str, Any]] | None = None,
    ) -> None:
        super().__init__()
        if block is None:
            from condgen.blocks.spade import SPADEResBlock

            block = SPADEResBlock
        self.semantic_nc, self.z_dim, self.use_vae = semantic_nc, z_dim, use_vae
        self.schedule = block_schedule(num_upsampling_layers)
        self.sh, self.sw = latent_size(crop_size, aspect_ratio, num_upsampling_layers)
        num_levels = num_upsamplings(num_upsampling_layers) + 1
        self.condition: ConditionSource = condition(semantic_nc, num_levels=num_levels, ngf=ngf)
        top = int(self.schedule[0].in_mult * ngf)
        if use_vae:
            self.fc = nn.Linear(z_dim, top * self.sh * self.sw)
        else:
            self.fc = nn.Conv2d(self.condition.fc_nc, top, 3, padding=1)
        stage_options = stage_options or {}
        unknown = sorted(set(stage_options) - {stage.name for stage in self.schedule})
        if unknown:
            raise ValueError(
                f"stage_options names {unknown}, which schedule {num_upsampling_layers!r} does not have "
                f"(its stages: {', '.join(stage.name for stage in self.schedule)})"
            )
        for stage in self.schedule:
            self.add_module(
                stage.name,
                block(
                    int(stage.in_mult * ngf),
                    int(stage.out_mult * ngf),
                    self.condition.cond_nc,
                    **stage_options.get(stage.name, {}),
                ),
            )
        self.conv_img = nn.Conv2d(int(self.schedule[-1].out_mult * ngf), 3, 3, padding=1)
        init_weights(self)

    def forward(self, seg: Tensor, z: Tensor | None = None) -> Tensor:
        """seg: (b, semantic_nc, H, W) one-hot; z: the latent, (b, z_dim), or None (sampled).

        With a condition source that consumes the latent (3-D noise), z goes to it instead of `fc`.
        Returns (b, 3, H, W).
        """
        if seg.shape[1] != self.semantic_nc:
            raise ValueError(
                f"label map has {seg.shape[1]} channels, generator expects {self.semantic_nc} "
                "(label_nc + don't-care + instance edge); check the dataset's gin file"
            )
        labels = self.condition.label_input(seg, None if self.use_vae else z)
        if self.use_vae:
            if z is None:
                z = torch.randn(seg.shape[0], self.z_dim, device=seg.device, dtype=seg.dtype)
            x = rearrange(self.fc(z), "b (c h w) -> b c h w", h=self.sh, w=self.sw)
        else:
            x = self.fc(F.interpolate(labels, size=(self.sh, self.sw), mode="nearest"))
        conds = self.condition.block_conditions(labels, None if self.use_vae else z)
        for stage in self.schedule:
            if stage.upsample:
                x = F.interpolate(x, scale_factor=2, mode="nearest")
            x = getattr(self, stage.name)(x, select_condition(conds, x.shape[-2:]))
        return torch.tanh(self.conv_img(F.leaky_relu(x, 0.2)))


class GeneratorPreset(Generator):
    """A named generator: `Generator` with other defaults (`PRESET`); every other argument passes through.

    Bind a knob once: `Generator.ngf = 32` reaches every preset, `SPADEGenerator.ngf = 32` only that one;
    a preset's own defaults win over `Generator.*` bindings of the same argument.
    """

    PRESET: dict[str, Any] = {}

    def __init__(self, semantic_nc: int, **kwargs: Any) -> None:
        super().__init__(semantic_nc, **{**self.preset(), **kwargs})

    @classmethod
    def preset(cls) -> dict[str, Any]:
        return dict(cls.PRESET)
