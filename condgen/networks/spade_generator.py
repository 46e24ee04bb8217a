"""The SPADE generator (SPADE, Sec. 3.2, Fig. 4 and appendix Fig. 12; official `SPADEGenerator`).

`Generator` with the paper's defaults spelled out: `SPADEResBlock`s conditioned on the plain label map.
Official `--norm_G spectralspadesyncbatch3x3` is `SPADEResBlock.spectral = True`,
`SPADE.param_free = 'syncbatch'`, `SPADE.kernel_size = 3` (the defaults). Checkpoint keys are the official
ones up to the spectral-norm suffixes that `condgen.convert.rename_official` maps.
"""

from __future__ import annotations

from torch import nn

from condgen.blocks.condition import LabelMapCondition
from condgen.blocks.spade import SPADEResBlock
from condgen.networks.generator import Generator
from condgen.registry import register

# Official checkpoints need no prefix renames: module names are the official ones.
OFFICIAL_RENAMES: dict[str, str | None] = {}


@register("generator")
class SPADEGenerator(Generator):
    """SPADE generator: label map (+ VAE latent) -> image, through 7 SPADE residual blocks.

    Args:
        semantic_nc: label channels of `seg` (COCO 184, ADE20K 151, Cityscapes 36).
        crop_size: output width; the output is crop_size / aspect_ratio high.
        aspect_ratio: width / height (Cityscapes 2.0).
        ngf: base width (official 64).
        z_dim: latent size with `use_vae` (official 256).
        use_vae: `fc` maps a latent z (official `--use_vae`); else it convolves the downsampled label map.
        num_upsampling_layers: 'normal' | 'more' (Cityscapes) | 'most'.
        block: residual block class (`SPADE.*` / `SPADEResBlock.*` gin bindings configure it).
        condition: condition source class.
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
        block: type[nn.Module] = SPADEResBlock,
        condition: type[nn.Module] = LabelMapCondition,
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
