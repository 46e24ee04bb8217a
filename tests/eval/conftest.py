"""Tiny trained runs shared by the evaluation tests (trained once per session, a few seconds each)."""

from pathlib import Path

import pytest

TINY = Path(__file__).resolve().parents[1] / "train" / "tiny.gin"
VAE = [
    "SPADEGenerator.use_vae = True",
    "SPADEGenerator.z_dim = 8",
    "build_gan.encoder = @VAEEncoder",
    "VAEEncoder.ngf = 4",
    "VAEEncoder.z_dim = 8",
]


def train_tiny(run_dir: Path, *bindings: str) -> Path:
    from accelerate.state import AcceleratorState, GradientState

    from condgen.cli.gin_setup import parse_gin
    from condgen.train.loop import train

    parse_gin([TINY], ["train.max_steps = 2", "train.sample_every = None", "train.save_every = 1", *bindings])
    try:
        train(run_dir)
    finally:
        AcceleratorState._reset_state(True)
        GradientState._reset_state()
    return run_dir


@pytest.fixture(scope="session")
def spade_run(tmp_path_factory) -> Path:
    return train_tiny(tmp_path_factory.mktemp("runs") / "spade")


@pytest.fixture(scope="session")
def vae_run(tmp_path_factory) -> Path:
    return train_tiny(tmp_path_factory.mktemp("runs") / "vae", *VAE)


@pytest.fixture(scope="session")
def tiny_segmenter(tmp_path_factory):
    """The landscape segmenter entry with a seconds-long recipe, cached in a temporary folder."""
    from condgen.eval.landscape_segmenter import LandscapeRecipe
    from condgen.eval.segmenters import load_segmenter

    recipe = LandscapeRecipe(train_images=16, steps=4, batch_size=8, width=4, val_images=4)
    return load_segmenter("landscape", recipe=recipe, cache=tmp_path_factory.mktemp("seg"))
