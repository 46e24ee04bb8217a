"""The OASIS generator (OASIS, ICLR 2021, Sec. 3.3; "You Only Need Adversarial Supervision").

A preset of `Generator`: SPADE residual blocks (spectral norm on conv_0 / conv_1 / conv_s only; affine-free
sync BN in every SPADE; hidden width 128, 3x3 kernels), no encoder, and 3-D noise: a 64-d vector per image
replicated over the map and concatenated *before* the one-hot label (`NoiseCondition`), which feeds `fc`
(nearest-downsampled to crop/32) and every SPADE layer. Schedule 'oasis': 6 blocks, widths
16,16,16,8,4,2,1 x ngf, nearest x2 after blocks 0-4; `conv_img(lrelu(x, 0.2))` + tanh.

Label channels are taken in the order given (see `condgen/data/oasis_labels.py` for OASIS's order and the
converter's permutation to condgen's). "OASIS without 3-D noise" is `OASISGenerator.condition =
@LabelMapCondition`.
"""

from __future__ import annotations

from condgen.blocks.noise import NoiseCondition
from condgen.blocks.spade import SPADEResBlock
from condgen.networks.generator import GeneratorPreset
from condgen.registry import register

NUM_BLOCKS = 6


def _renames() -> dict[str, str | None]:
    """Original keys -> ours: `body.<i>.` -> `body_<i>.`; the SPADE norm `first_norm` -> `param_free_norm`."""
    table: dict[str, str | None] = {}
    for i in range(NUM_BLOCKS):
        table[f"body.{i}."] = f"body_{i}."
        for norm in ("norm_0", "norm_1", "norm_s"):
            table[f"body.{i}.{norm}.first_norm."] = f"body_{i}.{norm}.param_free_norm."
    return table


@register("generator")
class OASISGenerator(GeneratorPreset):
    """OASIS generator: label map (+ 3-D noise z) -> image, through 6 SPADE residual blocks.

    Defaults: `block=@SPADEResBlock`, `condition=@NoiseCondition` (z_dim 64: `NoiseCondition.z_dim`),
    `use_vae=False`, `num_upsampling_layers='oasis'`, ngf 64 (the original `channels_G`). `G(seg, z)` takes
    z as (b, 64) (replicated) or (b, 64, H, W) (a noise map, e.g. for local resampling); None draws it.
    Sizes: 74,314,691 parameters on ADE20K (151 label channels), 75,199,427 on COCO-Stuff (183),
    71,107,523 on Cityscapes (35).
    """

    PRESET = {
        "block": SPADEResBlock,
        "condition": NoiseCondition,
        "use_vae": False,
        "num_upsampling_layers": "oasis",
    }
    OFFICIAL_RENAMES: dict[str, str | None] = _renames()
