"""The CC-FPSE generator (CC-FPSE, Sec. 3.1, Fig. 2; official `CondConvGenerator`, `--netG condconv`).

`Generator` with CC blocks conditioned on the label feature pyramid. The official code picks
`num_upsampling_layers = 'more'` iff the dataset is Cityscapes ('normal' otherwise, not an option there);
here it is an argument that the Cityscapes gin file sets. Official checkpoints load with
`OFFICIAL_RENAMES` (pyramid layers only; the blocks keep the official module names).
"""

from __future__ import annotations

from torch import nn

from condgen.blocks.cond_conv import CCResBlock
from condgen.blocks.weight_pyramid import FeaturePyramidCondition
from condgen.networks.generator import Generator
from condgen.registry import register

# Official label-pyramid layers `label{enc,lat,dec}<i>.0.{0,1}` -> `condition.{enc,lat,dec}.<i-1>.{0,1}`
# (7 encoder levels cover 'more'; 'most' is not an official CC-FPSE mode).
OFFICIAL_RENAMES: dict[str, str | None] = {
    f"label{part}{i}.0.": f"condition.{part}.{i - 1}." for part in ("enc", "lat", "dec") for i in range(1, 8)
}


@register("generator")
class CCFPSEGenerator(Generator):
    """CC-FPSE generator: label map (+ VAE latent) -> image through 7 conditional-convolution blocks.

    Args:
        semantic_nc: label channels of `seg` (COCO 184, ADE20K 151, Cityscapes 36).
        crop_size: output width; the output is crop_size / aspect_ratio high.
        aspect_ratio: width / height (Cityscapes 2.0).
        ngf: base width, also the pyramid width (official 64).
        z_dim: latent size with `use_vae` (official 256).
        use_vae: `fc` maps a latent z; default True as in the paper (Sec. 4: style encoder + KL) and every
            official script; False gives the 126.79 M-parameter COCO generator.
        num_upsampling_layers: 'normal' (COCO, ADE20K) | 'more' (Cityscapes, as the official code forces).
        block: residual block class (`CCResBlock.*` gin bindings configure it).
        condition: condition source class (`LabelMapCondition` gives "CC w/o FP", Table 2).
    """

    def __init__(
        self,
        semantic_nc: int,
        *,
        crop_size: int = 256,
        aspect_ratio: float = 1.0,
        ngf: int = 64,
        z_dim: int = 256,
        use_vae: bool = True,
        num_upsampling_layers: str = "normal",
        block: type[nn.Module] = CCResBlock,
        condition: type[nn.Module] = FeaturePyramidCondition,
    ) -> None:
        super().__init__(
            semantic_nc,
            crop_size=crop_size,
            aspect_ratio=aspect_ratio,
            ngf=ngf,
            z_dim=z_dim,
            use_vae=use_vae,
            num_upsampling_layers=num_upsampling_layers,
            block=block,
            condition=condition,
        )
