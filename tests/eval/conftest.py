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


OASIS_GIN = Path(__file__).resolve().parents[2] / "gin" / "ablations" / "oasis" / "oasis.gin"
OASIS = [
    "OASISGenerator.ngf = 8",
    "OASISDiscriminator.ndf = 4",
    "NoiseCondition.z_dim = 8",
    "SyntheticLandscapes.crop_size = 64",  # the OASIS discriminator needs sides divisible by 64
]


def train_tiny(run_dir: Path, *bindings: str, files: tuple[Path, ...] = ()) -> Path:
    from accelerate.state import AcceleratorState, GradientState

    from condgen.cli.gin_setup import parse_gin
    from condgen.train.loop import train

    parse_gin(
        [TINY, *files],
        ["train.max_steps = 2", "train.sample_every = None", "train.save_every = 1", *bindings],
    )
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
def oasis_run(tmp_path_factory) -> Path:
    """A tiny OASIS (3-D noise generator, OASIS discriminator and objective), 64 px, ngf 8, 2 steps."""
    return train_tiny(tmp_path_factory.mktemp("runs") / "oasis", *OASIS, files=(OASIS_GIN,))


@pytest.fixture(scope="session")
def tiny_segmenter(tmp_path_factory):
    """The landscape segmenter entry with a seconds-long recipe, cached in a temporary folder."""
    from condgen.eval.landscape_segmenter import LandscapeRecipe
    from condgen.eval.segmenters import load_segmenter

    recipe = LandscapeRecipe(train_images=16, steps=4, batch_size=8, width=4, val_images=4)
    return load_segmenter("landscape", recipe=recipe, cache=tmp_path_factory.mktemp("seg"))


# Shipped in tests/fixtures/segmenters (outputs sampled); CONDGEN_SEGMENTER_FIXTURES: the full originals
SEGMENTER_FIXTURES = Path(
    __import__("os").environ.get(
        "CONDGEN_SEGMENTER_FIXTURES", Path(__file__).resolve().parents[1] / "fixtures" / "segmenters"
    )
)
# registry name -> (fixture file, its spec fields, their released file names)
PAPER_FILES = {
    "deeplabv2_cocostuff": (
        "deeplabv2_cocostuff.pt",
        ("",),
        ("deeplabv2_resnet101_msc-cocostuff164k-100000.pth",),
    ),
    "upernet101_ade20k": (
        "upernet101_ade20k.pt",
        ("_encoder", "_decoder"),
        ("ade20k-resnet101-upernet-encoder_epoch_50.pth", "ade20k-resnet101-upernet-decoder_epoch_50.pth"),
    ),
    "drn_d105_cityscapes": ("drn_d105_cityscapes.pt", ("",), ("drn-d-105_ms_cityscapes.pth",)),
}


def segmenter_fixture(name: str) -> dict:
    """A paper-segmenter parity fixture (large outputs sampled: compare with `tests.fixtures.compact`)."""
    import torch

    path = SEGMENTER_FIXTURES / PAPER_FILES[name][0]
    if not path.is_file():
        raise FileNotFoundError(f"segmenter parity fixture {path} is missing: unset "
                                f"CONDGEN_SEGMENTER_FIXTURES to use the shipped ones, or regenerate them "
                                f"(python -m tests.fixtures.make_segmenters)")
    return torch.load(path, weights_only=True)


@pytest.fixture(scope="session")
def paper_weights(tmp_path_factory):
    """The three paper segmenters' synthetic weights (fixture `spec` + tests/fixtures/segmenter_weights.py)
    saved as the released files would be, in a torch.hub checkpoint folder: {name: [paths]}, plus the
    fixtures' sha256 check."""
    import torch

    from tests.fixtures.segmenter_weights import state_dict_sha256, synthetic_state_dict
    folder = tmp_path_factory.mktemp("torch_home") / "hub" / "checkpoints"
    folder.mkdir(parents=True)
    out, digests = {}, {}
    for name, (_file, parts, released) in PAPER_FILES.items():
        fx = segmenter_fixture(name)
        out[name] = []
        for part, filename in zip(parts, released, strict=True):
            sd = synthetic_state_dict(fx[f"spec{part}"], fx["fixed"])
            digests[(name, part)] = (state_dict_sha256(sd), fx[f"weights_sha256{part}"])
            torch.save(sd, folder / filename)
            out[name].append(folder / filename)
            del sd
    return {"paths": out, "folder": folder, "torch_home": folder.parents[1], "digests": digests}
