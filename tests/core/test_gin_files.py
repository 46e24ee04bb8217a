"""Every gin experiment and ablation cell builds its networks (tiny width) and runs one forward pass."""

from pathlib import Path

import gin
import pytest
import torch
from torch.utils.data import default_collate

from condgen.cli.gin_setup import parse_gin
from condgen.data.labels import encode_labels
from condgen.networks.vae_encoder import reparameterize
from condgen.train.build import build_gan

GIN = Path(__file__).resolve().parents[2] / "gin"
EXPERIMENTS = sorted(p.name for p in GIN.glob("*.gin"))
CELLS = sorted(str(p.relative_to(GIN)) for p in (GIN / "ablations").rglob("*.gin"))
TINY = [
    "SPADEGenerator.ngf = 4", "CCFPSEGenerator.ngf = 4", "VAEEncoder.ngf = 4",
    "MultiscalePatchDiscriminator.ndf = 4", "FPSEDiscriminator.ndf = 4",
    "OASISGenerator.ngf = 4", "OASISDiscriminator.ndf = 4", "NoiseCondition.z_dim = 8",
    "SPADE.hidden = 8", "CCResBlock.hidden = 8",
    "SEANGenerator.ngf = 4", "SEANGenerator.style_dim = 8", "SEANGenerator.encoder_widths = (4, 4, 4, 4)",
    "ACE.hidden = 8", "CLADEGenerator.ngf = 4", "CLADEICPEGenerator.ngf = 4",
    "DPGANGenerator.ngf = 4", "DPGANDiscriminator.ndf = 4", "DPGANDiscriminator.head_channels = 4",
    "LabelPyramidCondition.z_dim = 8", "LabelPyramidCondition.channels = 8",
    "LabelPyramidCondition.first_channels = 4",
    "CocoStuff.crop_size = 64", "ADE20K.crop_size = 64", "CustomFolder.crop_size = 64",
    "Cityscapes.crop_size = 128", "SyntheticLandscapes.crop_size = 64", "SyntheticLandscapes.length = 4",
    "SDMUNet.model_channels = 32", "SDMUNet.num_res_blocks = 1", "SDMUNet.num_head_channels = 32",
]


def _build_and_run(files: list[str], roots: dict) -> dict:
    bindings = TINY + [f"{k} = '{v}'" for k, v in roots.items()]
    parse_gin([GIN / f for f in files], bindings)
    dataset = gin.query_parameter("train.dataset").scoped_configurable_fn()
    spec = dataset.spec
    gan = build_gan(spec)
    batch = default_collate([dataset[0], dataset[1]])
    seg = encode_labels(batch["label"], spec.label_nc, contain_dontcare_label=spec.contain_dontcare_label,
                        instance=batch.get("instance"), instance_edges=spec.instance_edges)
    real = batch["image"]
    if type(gan.G).__name__ == "SDMUNet":  # a denoiser: (noisy image, timesteps, label map) -> noise | var.
        out = gan.G(real, torch.tensor([0, 999]), seg)
        assert out.shape == (2, 6, *real.shape[-2:]) and torch.isfinite(out).all() and gan.D is None
        return {"G": "SDMUNet", "D": None, "E": gan.E is not None, "gan": gan}
    z = None
    if gan.E is not None:
        mu, logvar = gan.E(real)
        z = reparameterize(mu, logvar)
    fake = gan.G(seg, z)
    assert fake.shape == real.shape and torch.isfinite(fake).all()
    logits, feats, weights = gan.D.split(gan.D(fake, seg))
    assert logits and all(torch.isfinite(t).all() for t in logits)
    assert len(feats) == len(weights)
    return {"G": type(gan.G).__name__, "D": type(gan.D).__name__, "E": gan.E is not None, "gan": gan}


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_experiment_builds_and_runs(experiment, roots):
    out = _build_and_run([experiment], roots)
    if experiment.startswith("sean"):
        assert (out["G"], out["D"], out["E"]) == ("SEANGenerator", "MultiscalePatchDiscriminator", False)
        assert gin.query_parameter("train.objective").selector == "SEANObjective"
        assert out["gan"].D.discriminator_0.model2[0][0].stride == (2, 2)  # SEAN's D: all strides 2
        return
    if experiment.startswith("sdm"):
        assert (out["G"], out["D"], out["E"]) == ("SDMUNet", None, False)
        assert gin.query_parameter("train.objective").selector == "SDMObjective"
        return
    if experiment.startswith("oasis"):
        assert (out["G"], out["D"], out["E"]) == ("OASISGenerator", "OASISDiscriminator", False)
        assert type(out["gan"].G.condition).__name__ == "NoiseCondition"
        assert gin.query_parameter("train.objective").selector == "OASISObjective"
        return
    if experiment.startswith("dpgan"):
        assert (out["G"], out["D"], out["E"]) == ("DPGANGenerator", "DPGANDiscriminator", False)
        assert type(out["gan"].G.condition).__name__ == "LabelPyramidCondition"
        assert out["gan"].G.body_0.norm_0.mlp_shared is None  # SPADE without its shared conv
        assert gin.query_parameter("train.objective").selector == "DPGANObjective"
        assert not any(p.requires_grad for p in out["gan"].D.dis.parameters())  # 'official': heads frozen
        return
    if experiment.startswith("clade"):
        icpe = experiment.startswith("clade_icpe")
        assert (out["G"], out["D"], out["E"]) == (
            "CLADEICPEGenerator" if icpe else "CLADEGenerator", "MultiscalePatchDiscriminator", False)
        assert type(out["gan"].G.condition).__name__ == ("ICPECondition" if icpe else "LabelMapCondition")
        norm = out["gan"].G.head_0.norm_0
        assert norm.icpe == icpe and norm.instance_edge == ("ade20k" not in experiment)
        return
    expect_ccfpse = experiment.startswith("ccfpse")
    assert out["G"] == ("CCFPSEGenerator" if expect_ccfpse else "SPADEGenerator")
    assert out["D"] == ("FPSEDiscriminator" if expect_ccfpse else "MultiscalePatchDiscriminator")
    # CC-FPSE trains with the style encoder, SPADE's main results without; the quickstart shows it off
    assert out["E"] == (expect_ccfpse or "vae_encoder.gin" in (GIN / experiment).read_text()
                        or "build_gan.encoder = @VAEEncoder" in (GIN / experiment).read_text())


@pytest.mark.parametrize("cell", CELLS)
def test_ablation_cell_builds_and_runs(cell, roots):
    base = "ccfpse_coco.gin" if "ccfpse_table2" in cell or "ablations/clade/" in cell else "spade_ade20k.gin"
    if "ablations/oasis/" in cell and "spade_3d_noise" not in cell:
        base = "oasis_ade20k.gin"
    if "ablations/dpgan/" in cell:
        base = "dpgan_ade20k.gin"
    out = _build_and_run([base, cell], roots)
    text = (GIN / cell).read_text()
    for name in ("SPADEGenerator", "CCFPSEGenerator", "OASISGenerator", "DPGANGenerator"):
        if f"build_gan.generator = @{name}" in text:
            assert out["G"] == name
    discriminators = ("MultiscalePatchDiscriminator", "FPSEDiscriminator", "OASISDiscriminator",
                      "DPGANDiscriminator")
    for name in discriminators:
        if f"build_gan.discriminator = @{name}" in text:
            assert out["D"] == name
    G = out["gan"].G
    if "FeaturePyramidCondition" in text:
        assert type(G.condition).__name__ == "FeaturePyramidCondition"
    if "NoiseCondition" in text:
        assert type(G.condition).__name__ == "NoiseCondition" and G.condition.cond_nc == 8 + G.semantic_nc
    if "LabelMapCondition" in text:
        assert type(G.condition).__name__ == "LabelMapCondition"
    if "shortcut_norm = @CLADE" in text:
        assert type(G.up_0.norm_s).__name__ == "CLADE"
        assert G.up_0.conv_s.in_channels == G.up_0.norm_1.num_features + 1  # + the edge feature
    if "kernel_size = 5" in text:
        assert G.head_0.norm_0.mlp_gamma.kernel_size == (5, 5)
    if "random_input" in cell:
        assert out["E"] is False and G.use_vae

