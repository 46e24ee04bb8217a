"""The compact SEAN parity fixture (tests/fixtures/sean, made by tests/fixtures/make_sean.py) and the
original networks rebuilt from it, once per session (93M parameters: ~4 s to make, ~4 s to load)."""

from pathlib import Path

import pytest
import torch

from tests.conftest import one_thread
from tests.fixtures.recipe import build_state_dict

_one_thread = pytest.fixture(autouse=True)(one_thread)
FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "sean" / "sean_tiny.pt"
# the fixture's original command line, architecture part (README section 1)
FLAGS = "--dataset_mode custom --label_nc 10 --no_instance --crop_size 128 --aspect_ratio 2 --ngf 8 --ndf 16"


@pytest.fixture(scope="session")
def sean_fx() -> dict:
    return torch.load(FIXTURE, weights_only=True)


@pytest.fixture(scope="session")
def original_states(sean_fx) -> dict[str, dict[str, torch.Tensor]]:
    """The original G, D and VGG state dicts (original keys, original order)."""
    nets = sean_fx["nets"]
    return {n: build_state_dict(nets[n]["recipe"], nets[n]["buffers"]) for n in ("G", "D", "VGG")}


@pytest.fixture(scope="session")
def sean_inputs(sean_fx) -> tuple[torch.Tensor, torch.Tensor]:
    """(one-hot label map (2, 10, 64, 128), image (2, 3, 64, 128))."""
    seg = torch.zeros(2, 10, 64, 128).scatter_(1, sean_fx["label"].long(), 1.0)
    return seg, sean_fx["image"]
