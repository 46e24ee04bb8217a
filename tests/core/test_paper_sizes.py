"""Every paper gin file, as written (full width, the paper's crop), builds networks of the official size.

The counts are the official code's (fixtures READMEs; reference §1.10): a converted official checkpoint
has these shapes, so it loads into what the gin file builds. Built on the meta device: no memory, no time.
"""

from pathlib import Path

import gin
import pytest
import torch

from condgen.cli.gin_setup import parse_gin
from condgen.train.build import build_gan
from condgen.utils import count_parameters

GIN = Path(__file__).resolve().parents[2] / "gin"
E = 10_463_424  # the official VAE encoder: it squashes every image to 256 x 256 first (Cityscapes too)
OFFICIAL = {
    "spade_coco.gin": {"G": 97_480_899, "D": 5_904_514},
    "spade_ade20k.gin": {"G": 96_492_483},
    "spade_cityscapes.gin": {"G": 93_048_003},
    "ccfpse_coco.gin": {"D": 5_194_817, "E": E},
    "ccfpse_ade20k.gin": {"E": E},
    "ccfpse_cityscapes.gin": {"E": E},
    "oasis_ade20k.gin": {"G": 74_314_691, "D": 22_258_904},
    "oasis_coco.gin": {"G": 75_199_427, "D": 22_260_984},
    "oasis_cityscapes.gin": {"G": 71_107_523, "D": 22_251_364},
    # CLADE fixture README section 7 (tzt101/CLADE defaults); ICPE adds 6 per CLADE layer (18 layers)
    "clade_coco.gin": {"G": 72_505_383, "D": 5_904_514},
    "clade_ade20k.gin": {"G": 71_427_267, "D": 5_836_930},
    "clade_cityscapes.gin": {"G": 67_901_991, "D": 5_601_410},
    "clade_icpe_coco.gin": {"G": 72_505_491},
    "clade_icpe_ade20k.gin": {"G": 71_427_375},
    "clade_icpe_cityscapes.gin": {"G": 67_902_099},
    # DP-GAN fixture README section 9 (sj-li/DP_GAN defaults; COCO-Stuff: OASIS's 183 channels)
    "dpgan_ade20k.gin": {"G": 70_615_683, "D": 22_924_890},
    "dpgan_cityscapes.gin": {"G": 69_513_219, "D": 22_917_350},
    "dpgan_coco.gin": {"G": 70_919_811, "D": 22_926_970},
    # SEAN (ZPdesu/SEAN fixture README section 6). CelebAMask-HQ (19 classes) is the original's exact size.
    # The original builds 19 per-class style MLPs whatever label_nc is (and then fails on classes >= 19);
    # condgen builds one per label channel: 15 style-using ACEs x (512 x 512 + 512) = 3,939,840 per class.
    "sean_celeba.gin": {"G": 266_907_367, "D": 1_364_098},
    "sean_ade20k.gin": {"G": 270_861_031 + (151 - 19) * 3_939_840, "D": 1_634_434},
    "sean_cityscapes.gin": {"G": 267_416_551 + (36 - 19) * 3_939_840, "D": 1_398_914},
    # SDM: the denoising UNet only (no discriminator); the original's create_model at the README flags
    "sdm_ade20k.gin": {"G": 660_608_518},
    "sdm_coco.gin": {"G": 662_509_318},
    "sdm_cityscapes.gin": {"G": 653_984_518},
    "sdm_celeba.gin": {"G": 653_062_918},
}



def test_every_paper_experiment_is_listed():
    papers = {p.name for p in GIN.glob("*.gin")} - {"quickstart.gin"}
    assert papers == set(OFFICIAL)


@pytest.mark.parametrize("experiment", sorted(OFFICIAL))
def test_paper_gin_builds_the_official_sizes(experiment, roots):
    parse_gin([GIN / experiment], [f"{k} = '{v}'" for k, v in roots.items()])
    spec = gin.query_parameter("train.dataset").scoped_configurable_fn().spec  # the paper's crop, not 64
    with torch.device("meta"):
        nets = build_gan(spec).named()
    counts = {name: count_parameters(nets[name]) for name in OFFICIAL[experiment]}
    assert counts == OFFICIAL[experiment]


def test_ccfpse_coco_generator_without_the_encoder_has_the_official_size(roots):
    """The official count is for `--use_vae` off: G then reads the label map instead of z."""
    bindings = [f"{k} = '{v}'" for k, v in roots.items()]
    parse_gin(
        [GIN / "ccfpse_coco.gin"], [*bindings, "CCFPSEGenerator.use_vae = False", "build_gan.encoder = None"]
    )
    spec = gin.query_parameter("train.dataset").scoped_configurable_fn().spec
    with torch.device("meta"):
        assert count_parameters(build_gan(spec).G) == 126_793_859
