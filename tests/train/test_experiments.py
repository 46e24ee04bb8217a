"""Every experiment file trains end to end: miniature official-layout datasets, tiny widths, 2 steps."""

import json
from pathlib import Path

import pytest

from condgen.cli.gin_setup import GIN_DIR, parse_gin
from condgen.train.loop import train

FAMILIES = ("spade", "ccfpse", "oasis", "clade", "dpgan", "sean")
EXPERIMENTS = sorted(p.stem for p in GIN_DIR.glob("*_*.gin") if p.stem.split("_")[0] in FAMILIES)
TINY = [
    "SPADEGenerator.ngf = 4", "SPADE.hidden = 8", "CCFPSEGenerator.ngf = 4", "VAEEncoder.ngf = 4",
    "MultiscalePatchDiscriminator.ndf = 4", "FPSEDiscriminator.ndf = 4",
    "OASISGenerator.ngf = 4", "OASISDiscriminator.ndf = 4", "NoiseCondition.z_dim = 8",
    "CLADEGenerator.ngf = 4", "CLADEICPEGenerator.ngf = 4", "DPGANGenerator.ngf = 4",
    "DPGANDiscriminator.ndf = 4", "DPGANDiscriminator.head_channels = 4", "LabelPyramidCondition.z_dim = 8",
    "LabelPyramidCondition.channels = 8",
    "Pix2PixHDObjective.lambda_vgg = 0.0", "SEANObjective.lambda_vgg = 0.0",
    "SEANGenerator.ngf = 4", "SEANGenerator.style_dim = 8", "SEANGenerator.encoder_widths = (4, 4, 4, 4)",
    "ACE.hidden = 8", "CustomFolder.crop_size = 64",
    "BATCH_SIZE = 2", "train.max_steps = 2", "train.num_samples = 2", "train.progress = False",
    "CocoStuff.crop_size = 64", "ADE20K.crop_size = 64", "Cityscapes.crop_size = 128",  # 'more' needs 128
]


@pytest.fixture(scope="module")
def roots(tmp_path_factory) -> list[str]:
    from condgen.data.miniature import make_miniature

    base = tmp_path_factory.mktemp("mini")
    paths = {layout: make_miniature(layout, base / layout, n=2, size=128 if layout == "cityscapes" else 64)
             for layout in ("coco", "ade20k", "cityscapes", "custom")}
    return [f"COCO_ROOT = '{paths['coco']}'", f"ADE20K_ROOT = '{paths['ade20k']}'",
            f"CITYSCAPES_ROOT = '{paths['cityscapes']}'", f"CUSTOM_ROOT = '{paths['custom']}'"]


def test_all_experiments_are_found():
    assert len(EXPERIMENTS) == 21, EXPERIMENTS


@pytest.mark.slow
@pytest.mark.parametrize("name", EXPERIMENTS)
def test_experiment_trains(name, roots, tmp_path):
    parse_gin([GIN_DIR / f"{name}.gin"], TINY + roots)
    ckpt = train(tmp_path)
    state = json.loads((Path(ckpt) / "state.json").read_text())
    assert state["step"] == 2
    assert set(state["models"]) == ({"G", "D", "E"} if "ccfpse" in name else {"G", "D"})
    label_nc = {"coco": 182, "ade20k": 150, "cityscapes": 35, "celeba": 19}[name.rsplit("_", 1)[1]]
    assert state["spec"]["label_nc"] == label_nc


# OASIS ablation cells that change the networks or the objective, each stacked on its experiment (2 steps).
OASIS_CELLS = {
    "spade_g__oasis_d": "oasis_ade20k", "oasis_g__mspatch_d": "oasis_ade20k", "no_labelmix": "oasis_ade20k",
    "no_class_balancing": "oasis_ade20k", "no_3d_noise": "oasis_ade20k", "spade_3d_noise": "spade_ade20k",
}


@pytest.mark.slow
@pytest.mark.parametrize("cell", sorted(OASIS_CELLS))
def test_oasis_ablation_cell_trains(cell, roots, tmp_path):
    files = [GIN_DIR / f"{OASIS_CELLS[cell]}.gin", GIN_DIR / "ablations" / "oasis" / f"{cell}.gin"]
    parse_gin(files, TINY + roots)
    ckpt = train(tmp_path)
    state = json.loads((Path(ckpt) / "state.json").read_text())
    assert state["step"] == 2 and set(state["models"]) == {"G", "D"}
    metrics = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    terms = set(metrics[-1])
    if "mspatch" in cell or cell == "spade_3d_noise":
        assert {"G_GAN", "D_fake", "D_real"} <= terms and "D_labelmix" not in terms
    else:
        assert {"G_adv", "D_fake", "D_real"} <= terms
        assert ("D_labelmix" in terms) == (cell != "no_labelmix")


# CLADE / DP-GAN cells (crossed cells, the trained-heads switch), each stacked on its experiment (2 steps).
CROSSED_CELLS = {
    "dpgan/train_heads": "dpgan_ade20k", "dpgan/dpgan_g__mspatch_d": "dpgan_ade20k",
    "dpgan/spade_g__dpgan_d": "dpgan_ade20k", "clade/cc_wo_fp__clade_shortcut": "ccfpse_coco",
}


@pytest.mark.slow
@pytest.mark.parametrize("cell", sorted(CROSSED_CELLS))
def test_crossed_cell_trains(cell, roots, tmp_path):
    files = [GIN_DIR / f"{CROSSED_CELLS[cell]}.gin", GIN_DIR / "ablations" / f"{cell}.gin"]
    parse_gin(files, TINY + roots)
    ckpt = train(tmp_path)
    state = json.loads((Path(ckpt) / "state.json").read_text())
    assert state["step"] == 2
    assert set(state["models"]) == ({"G", "D", "E"} if "clade/" in cell else {"G", "D"})  # CC-FPSE: VAE
    terms = set(json.loads((tmp_path / "metrics.jsonl").read_text().splitlines()[-1]))
    if "mspatch" in cell or "clade/" in cell:
        assert {"G_GAN", "D_fake", "D_real"} <= terms and "G_align" not in terms
    else:
        assert {"G_adv", "G_align", "G_ms_hinge", "D_ms_fake", "D_ms_real", "D_labelmix"} <= terms
