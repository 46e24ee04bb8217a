"""The SEAN generator (SEAN, CVPR 2020, Sec. 3 and Fig. 4; original `SPADEGenerator` of ZPdesu/SEAN).

A preset of `Generator`: SPADE's schedule and widths, `SEANResBlock`s whose ACE norms read the label map and
a per-region style matrix (`RegionStyleCondition`), the last block without styles (as the original), and a
region style encoder (`RegionStyleEncoder`, the original `Zencoder`) that turns a style image and its label
map into that matrix. `G(seg, z)` takes z as:
- a style image (b, 3, H, W) in [-1, 1], whose regions are read with `seg` (reconstruction, as in training);
- a style matrix (b, K, style_dim) (`G.encode_style(img, seg)`, possibly edited per region);
- None: every row 0 (each region's style is then its MLPs' bias; an arbitrary but fixed look).
"""

from __future__ import annotations

from typing import Any

from torch import Tensor, nn

from condgen.blocks.sean import ACE, RegionStyleCondition, SEANResBlock, region_average
from condgen.networks.generator import GeneratorPreset, block_schedule
from condgen.networks.init import init_weights
from condgen.registry import register

STYLE_BLOCKS = ("head_0", "G_middle_0", "G_middle_1", "up_0", "up_1", "up_2", "up_3", "up_4")


@register("encoder")
class RegionStyleEncoder(nn.Module):
    """Image -> per-region style matrix (SEAN Sec. 3.1, Fig. 4 left; the original `Zencoder`).

    A small conv net (reflect-pad + 3x3 conv, two stride-2 convs, one transposed conv back up, reflect-pad +
    3x3 conv, tanh; instance norm and leaky ReLU 0.2 between) gives style_dim-wide features at H/2 x W/2;
    each label channel's region (nearest-resized) is averaged. Module indices are the original's.

    Args:
        widths: the four hidden widths (original 32, 64, 128, 256, whatever ngf is).
        style_dim: output width S (original 512).
    """

    def __init__(
        self, *, widths: tuple[int, int, int, int] = (32, 64, 128, 256), style_dim: int = 512
    ) -> None:
        super().__init__()
        c1, c2, c3, c4 = widths
        self.style_dim = style_dim

        def norm_act(ch: int) -> list[nn.Module]:
            return [nn.InstanceNorm2d(ch, affine=False), nn.LeakyReLU(0.2)]

        self.model = nn.Sequential(
            nn.ReflectionPad2d(1), nn.Conv2d(3, c1, 3), *norm_act(c1),
            nn.Conv2d(c1, c2, 3, stride=2, padding=1), *norm_act(c2),
            nn.Conv2d(c2, c3, 3, stride=2, padding=1), *norm_act(c3),
            nn.ConvTranspose2d(c3, c4, 3, stride=2, padding=1, output_padding=1), *norm_act(c4),
            nn.ReflectionPad2d(1), nn.Conv2d(c4, style_dim, 3), nn.Tanh(),
        )  # fmt: skip

    def forward(self, img: Tensor, seg: Tensor) -> Tensor:
        """img: (b, 3, H, W) in [-1, 1]; seg: (b, K, H', W'), its label map -> style matrix (b, K, S)."""
        if img.dim() != 4 or img.shape[1] != 3 or seg.shape[0] != img.shape[0]:
            raise ValueError(
                f"style image must be (b, 3, H, W) with the label map's batch size {seg.shape[0]}, "
                f"got {tuple(img.shape)}"
            )
        return region_average(self.model(img), seg)


@register("generator")
class SEANGenerator(GeneratorPreset):
    """SEAN generator: label map + per-region styles -> image, through 7 ACE residual blocks.

    Defaults: `block=@SEANResBlock`, `condition=@RegionStyleCondition`, `use_vae=False`; every `Generator`
    argument (ngf, num_upsampling_layers, ...) can be bound on `SEANGenerator` or `Generator`.

    Args:
        semantic_nc: label channels = style rows.
        style_dim: style code width (original 512), for the encoder and every ACE layer.
        encoder_widths: the style encoder's hidden widths.
        last_block_style: whether the last block uses styles (original: no).
    """

    PRESET = {"block": SEANResBlock, "condition": RegionStyleCondition, "use_vae": False}
    OFFICIAL_RENAMES: dict[str, str | None] = {
        "Zencoder.": "style_encoder.",
        **{f"{b}.ace_{n}.": f"{b}.norm_{n}." for b in STYLE_BLOCKS for n in ("0", "1", "s")},
        **{f"{b}.ace_{n}.Spade.param_free_norm.": None for b in STYLE_BLOCKS for n in ("0", "1", "s")},
        **{f"{b}.ace_{n}.Spade.": f"{b}.norm_{n}.spade." for b in STYLE_BLOCKS for n in ("0", "1", "s")},
    }

    def __init__(
        self,
        semantic_nc: int,
        *,
        style_dim: int = 512,
        encoder_widths: tuple[int, int, int, int] = (32, 64, 128, 256),
        last_block_style: bool = False,
        **kwargs: Any,
    ) -> None:
        preset = {**self.preset(), **kwargs}
        stages = block_schedule(preset.get("num_upsampling_layers", "normal"))
        options = {name: dict(opts) for name, opts in (preset.get("stage_options") or {}).items()}
        for stage in stages:  # every block builds its ACEs for this style width
            options.setdefault(stage.name, {}).setdefault("style_dim", style_dim)
        if not last_block_style:
            options[stages[-1].name].setdefault("use_style", False)
        super().__init__(semantic_nc, **{**preset, "stage_options": options})
        self.style_dim = style_dim
        self.style_encoder = init_weights(RegionStyleEncoder(widths=encoder_widths, style_dim=style_dim))

    def encode_style(self, img: Tensor, seg: Tensor) -> Tensor:
        """The style matrix (b, semantic_nc, style_dim) of `img`, its regions read with `seg`."""
        return self.style_encoder(img, seg)

    def forward(self, seg: Tensor, z: Tensor | None = None) -> Tensor:
        """seg: (b, semantic_nc, H, W); z: style image (b, 3, H, W), style matrix (b, semantic_nc,
        style_dim) or None (zero styles). Returns (b, 3, H, W)."""
        if z is None:
            z = seg.new_zeros(seg.shape[0], self.semantic_nc, self.style_dim)
        elif z.dim() == 4:
            z = self.encode_style(z, seg)
        return super().forward(seg, z)


def set_noise(G: nn.Module, noise: dict[str, Tensor] | None) -> None:
    """Fix every ACE layer's noise to `noise[name]` ((b, 1, h, w), names like 'up_1.norm_s'), or draw it
    again when `noise` is None. The original's layer names ('up_1.ace_s') are accepted too."""
    aces = {name: m for name, m in G.named_modules() if isinstance(m, ACE)}
    for ace in aces.values():
        ace.fixed_noise = None
    for name, value in (noise or {}).items():
        ours = name.replace(".ace_", ".norm_")
        if ours not in aces:
            raise KeyError(f"no ACE layer {name!r} in {type(G).__name__}; its ACE layers: {', '.join(aces)}")
        aces[ours].fixed_noise = value

