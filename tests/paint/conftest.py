"""Runs for the painter's tests, with random weights (no training needed to test the plumbing): a tiny VAE
run (32 px), the quickstart architecture (64 px, for the browser test and its timing) and a
converted-official-style COCO-Stuff run (182 classes grouped by category, don't care, instance edges, no
latent)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import gin
import pytest

from tests.conftest import REPO

TINY = REPO / "tests" / "train" / "tiny.gin"

TINY_VAE = [
    "SPADEGenerator.use_vae = True", "SPADEGenerator.z_dim = 8", "build_gan.encoder = @VAEEncoder",
    "VAEEncoder.ngf = 4", "VAEEncoder.z_dim = 8",
]  # fmt: skip


def random_run(out: Path, gin_file: Path, bindings: list[str] = ()) -> Path:
    """A run directory with freshly initialised networks: what `load_networks` reads, without training."""
    import torch

    from condgen.cli.gin_setup import parse_gin
    from condgen.convert.export import write_run_dir
    from condgen.registry import get
    from condgen.train.build import build_gan

    parse_gin([gin_file], list(bindings))
    dataset = get(gin.query_parameter("train.dataset").selector.split(".")[-1], "dataset").cls
    spec = dataset().spec  # the dataset's spec under the parsed bindings (crop size, classes)
    torch.manual_seed(0)
    gan = build_gan(spec)
    out = write_run_dir(out, gan.named(), gin.config_str(), spec, {"note": "random weights (tests)"})
    (out / "convert.json").unlink()  # a run of our own, not a converted checkpoint
    gin.clear_config()
    return out


@pytest.fixture(scope="session")
def vae_run(tmp_path_factory) -> Path:
    """tests/train/tiny.gin with the VAE (32 px): weights need no training to test the plumbing."""
    return random_run(tmp_path_factory.mktemp("paint") / "vae", TINY, TINY_VAE)


@pytest.fixture(scope="session")
def quickstart_run(tmp_path_factory) -> Path:
    """The quickstart's networks (64 px); CONDGEN_PAINT_RUN names a trained run instead (screenshots)."""
    if os.environ.get("CONDGEN_PAINT_RUN"):
        return Path(os.environ["CONDGEN_PAINT_RUN"])
    return random_run(tmp_path_factory.mktemp("paint") / "quickstart", REPO / "gin" / "quickstart.gin")


@pytest.fixture(scope="session")
def coco_run(tmp_path_factory) -> Path:
    """What `python -m condgen.convert spade --flags '--dataset_mode coco ...'` writes, random weights."""
    from condgen.convert.export import official_config_gin, write_run_dir
    from condgen.convert.official import load_official, parse_official_flags

    flags = "--dataset_mode coco --ngf 4 --crop_size 32 --load_size 32"
    nets = load_official("spade", flags)
    meta = {"repo": "spade", "flags": flags, "loaded": {}, "freshly_initialised": sorted(nets)}
    cfg = parse_official_flags("spade", flags)
    out = tmp_path_factory.mktemp("paint") / "coco_official"
    run = write_run_dir(out, nets, official_config_gin(cfg, flags), cfg.spec, meta)
    assert json.loads((run / "convert.json").read_text())["flags"] == flags
    gin.clear_config()
    return run


SEAN_TINY = """
include 'base/train.gin'
include 'base/landscapes.gin'
include 'blocks/sean_generator.gin'
include 'blocks/ms_patch_discriminator.gin'
SEANGenerator.ngf = 4
SEANGenerator.style_dim = 8
SEANGenerator.encoder_widths = (4, 4, 4, 4)
ACE.hidden = 8
MultiscalePatchDiscriminator.ndf = 4
SyntheticLandscapes.crop_size = 64
"""


def make_sean_run(base: Path) -> Path:
    """A tiny SEAN (64 px, 8-wide styles) on the landscapes, random weights; the style weights are enlarged
    so that a region's style visibly changes its pixels."""
    import torch
    from safetensors.torch import load_file, save_file

    (base / "sean.gin").write_text(SEAN_TINY)
    run = random_run(base / "sean", base / "sean.gin")
    path = run / "step_0" / "G.safetensors"
    state = load_file(str(path))
    generator = torch.Generator().manual_seed(0)
    for k, v in state.items():
        if ".fc_mu." in k or ".conv_gamma." in k or ".blending_" in k or k.startswith("style_encoder."):
            state[k] = torch.randn(v.shape, generator=generator) * 0.5
    save_file(state, str(path))
    return run


@pytest.fixture(scope="session")
def sean_run(tmp_path_factory) -> Path:
    return make_sean_run(tmp_path_factory.mktemp("paint"))
