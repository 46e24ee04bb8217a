"""The CLADE and CLADE-ICPE generators (CLADE, TPAMI 2021, Sec. 3; original tzt101/CLADE `--norm_mode clade`).

Presets of `Generator` on SPADE's skeleton ('normal' / 'more' schedules, `fc` over the downsampled label
map or the VAE latent): `CLADEResBlock`s, i.e. SPADE blocks whose norms are class-adaptive (`CLADE`, a
table lookup per class instead of SPADE's three convs over the label map). With instance edges
(`CLADE.instance_edge = True`, COCO-Stuff and Cityscapes) every norm appends a 1x1-conv feature of the
edge map, as the original does. CLADE-ICPE adds the intra-class positional map (`ICPECondition`) and its
two 1x1 convs per norm. Module names are the original's (the SPADE fork's), up to the spectral-norm suffixes
that `condgen.convert` maps.
"""

from __future__ import annotations

from functools import partial

from condgen.blocks.clade import CLADE, CLADEResBlock, ICPECondition
from condgen.blocks.condition import LabelMapCondition
from condgen.networks.generator import GeneratorPreset
from condgen.registry import register


@register("generator")
class CLADEGenerator(GeneratorPreset):
    """CLADE generator: label map (+ VAE latent) -> image through 7 CLADE residual blocks.

    Defaults: `block=@CLADEResBlock`, `condition=@LabelMapCondition`, `use_vae=False` (the original
    default). Sizes at ngf 64: 72,505,383 parameters on COCO-Stuff (184 channels with edges), 71,427,267
    on ADE20K (151), 67,901,991 on Cityscapes ('more', 36 with edges).
    """

    PRESET = {"block": CLADEResBlock, "condition": LabelMapCondition, "use_vae": False}
    OFFICIAL_RENAMES: dict[str, str | None] = {}  # module names are the original's


@register("generator")
class CLADEICPEGenerator(GeneratorPreset):
    """CLADE-ICPE generator: CLADE with the intra-class positional encoding (`--add_dist`).

    Defaults: `block` = `CLADEResBlock` with `CLADE(icpe=True)`, `condition=@ICPECondition` (the positional
    map computed from the label map); 6 parameters more per CLADE layer than `CLADEGenerator` (+108 at
    'normal').
    """

    PRESET = {
        "block": partial(CLADEResBlock, norm=partial(CLADE, icpe=True)),
        "condition": ICPECondition,
        "use_vae": False,
    }
    OFFICIAL_RENAMES: dict[str, str | None] = {}
