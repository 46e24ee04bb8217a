"""The SPADE generator (SPADE, Sec. 3.2, Fig. 4 and appendix Fig. 12; official `SPADEGenerator`).

A preset of `Generator`: `SPADEResBlock`s conditioned on the plain label map. Official
`--norm_G spectralspadesyncbatch3x3` is `SPADEResBlock.spectral = True`, `SPADE.param_free = 'syncbatch'`,
`SPADE.kernel_size = 3` (the defaults). Checkpoint keys are the official ones up to the spectral-norm
suffixes that `condgen.convert` maps.
"""

from __future__ import annotations

from condgen.blocks.condition import LabelMapCondition
from condgen.blocks.spade import SPADEResBlock
from condgen.networks.generator import GeneratorPreset
from condgen.registry import register


@register("generator")
class SPADEGenerator(GeneratorPreset):
    """SPADE generator: label map (+ VAE latent) -> image, through 7 SPADE residual blocks.

    Defaults: `block=@SPADEResBlock`, `condition=@LabelMapCondition`, `use_vae=False`; every `Generator`
    argument (ngf, z_dim, use_vae, num_upsampling_layers, ...) can be bound on `SPADEGenerator` or
    `Generator`.
    """

    PRESET = {"block": SPADEResBlock, "condition": LabelMapCondition, "use_vae": False}
    OFFICIAL_RENAMES: dict[str, str | None] = {}  # module names are the official ones
