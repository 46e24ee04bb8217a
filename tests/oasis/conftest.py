"""The OASIS parity fixture (`/work/shared/fixtures/oasis`, or $CONDGEN_OASIS_DIR) and its recipe module."""

import importlib.util
import os
from pathlib import Path

import pytest
import torch

from tests.conftest import REPO, one_thread

_one_thread = pytest.fixture(autouse=True)(one_thread)  # small tensors; the cores are shared
OASIS_DIR = Path(os.environ.get("CONDGEN_OASIS_DIR", REPO.parent / "shared" / "fixtures" / "oasis"))


@pytest.fixture(scope="session")
def oasis_fx() -> dict:
    path = OASIS_DIR / "oasis_tiny.pt"
    if not path.is_file():
        pytest.skip(f"OASIS parity fixture not found at {path} (set CONDGEN_OASIS_DIR)")
    return torch.load(path, weights_only=True)


@pytest.fixture(scope="session")
def oasis_recipe():
    """The fixture's own recipe helper (numpy + torch, no OASIS code), imported from the fixture folder."""
    spec = importlib.util.spec_from_file_location("oasis_fixture_recipe", OASIS_DIR / "recipe.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
