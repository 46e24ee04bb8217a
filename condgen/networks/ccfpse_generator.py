"""The CC-FPSE generator (CC-FPSE, Sec. 3.1, Fig. 2; official `CondConvGenerator`, `--netG condconv`).

A preset of `Generator`: CC blocks conditioned on the label feature pyramid, with the VAE latent. The
official code picks `num_upsampling_layers = 'more'` iff the dataset is Cityscapes ('normal' otherwise, not
an option there); here it is an argument that the Cityscapes gin file sets. Official checkpoints load
with `OFFICIAL_RENAMES` (pyramid layers only; the blocks keep the official module names).
"""

from __future__ import annotations

from condgen.blocks.cond_conv import CCResBlock
from condgen.blocks.weight_pyramid import FeaturePyramidCondition
from condgen.networks.generator import GeneratorPreset
from condgen.registry import register


@register("generator")
class CCFPSEGenerator(GeneratorPreset):
    """CC-FPSE generator: label map (+ VAE latent) -> image through 7 conditional-convolution blocks.

    Defaults: `block=@CCResBlock`, `condition=@FeaturePyramidCondition` (`@LabelMapCondition` gives
    "CC w/o FP", Table 2), `use_vae=True` as in the paper (Sec. 4: style encoder + KL) and every official
    script (False gives the 126.79 M-parameter COCO generator).
    """

    PRESET = {"block": CCResBlock, "condition": FeaturePyramidCondition, "use_vae": True}
    # Official label-pyramid layers `label{enc,lat,dec}<i>.0.{0,1}` -> `condition.{enc,lat,dec}.<i-1>.{0,1}`
    # (7 encoder levels cover 'more'; 'most' is not an official CC-FPSE mode).
    OFFICIAL_RENAMES: dict[str, str | None] = {
        f"label{part}{i}.0.": f"condition.{part}.{i - 1}."
        for part in ("enc", "lat", "dec")
        for i in range(1, 8)
    }
