"""The OASIS parity fixture (shipped in tests/fixtures/oasis; $CONDGEN_OASIS_DIR: the full original one)."""

import os
from pathlib import Path

import pytest
import torch

from tests.conftest import REPO, one_thread
from tests.fixtures import recipe
from tests.fixtures.make_oasis import one_hot

_one_thread = pytest.fixture(autouse=True)(one_thread)  # small tensors; the cores are shared
OASIS_DIR = Path(os.environ.get("CONDGEN_OASIS_DIR", REPO / "tests" / "fixtures" / "oasis"))


@pytest.fixture(scope="session")
def oasis_fx() -> dict:
    path = OASIS_DIR / "oasis_tiny.pt"
    if not path.is_file():
        raise FileNotFoundError(f"OASIS parity fixture {path} is missing: unset CONDGEN_OASIS_DIR to use the "
                                f"shipped one, or regenerate it (python -m tests.fixtures.make_oasis)")
    fx = torch.load(path, weights_only=True)
    fx.setdefault("label_onehot", one_hot(fx["label"], fx["opt"]["semantic_nc"]))
    return fx


@pytest.fixture(scope="session")
def oasis_recipe():
    """The fixtures' parameter recipe (tests/fixtures/recipe.py; numpy + torch, no OASIS code)."""
    return recipe
