"""CLADE / CLADE-ICPE and DP-GAN against their originals, on compact fixtures kept in the repository
(tests/fixtures/{clade,dpgan}/, made by tests/fixtures/make_{clade,dpgan}.py from the shared fixtures)."""

from pathlib import Path

import pytest
import torch
from torch import Tensor, nn

from condgen.convert.keys import rename_official
from tests.conftest import one_thread
from tests.fixtures.recipe import build_state_dict

_one_thread = pytest.fixture(autouse=True)(one_thread)  # small tensors; the cores are shared
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


def load_fixture(name: str) -> dict:
    return torch.load(FIXTURES / name, weights_only=True)


def state(net: dict) -> dict[str, Tensor]:
    """The original state dict (original key names): parameters from the recipe, stored buffers."""
    sd = build_state_dict(net["recipe"], net["buffers"])
    assert set(sd) == set(net["keys"])
    return sd


def rel(ours: Tensor, ref: Tensor) -> float:
    """max |ours - ref| / std(ref)."""
    return ((ours.double() - ref.double()).abs().max() / ref.double().std()).item()


def grad_errors(net: nn.Module, renames: dict, ref: dict, stride: dict, scale: dict,
                roundoff: list, *, roundoff_tol: float) -> dict[str, float]:
    """|our gradient - the original's| max over its stored elements / the full gradient's scale, per
    parameter (original names); round-off-only gradients are checked absolutely here and left out."""
    ours = {n: p.grad for n, p in net.named_parameters() if p.grad is not None}
    renamed = rename_official(ref, renames)
    assert set(renamed) == set(ours), set(renamed) ^ set(ours)
    errors = {}
    for (mine, stored), theirs in zip(renamed.items(), ref, strict=True):
        g = ours[mine].flatten()[:: stride.get(theirs, 1)].reshape(stored.shape)
        err = (g.double() - stored.double()).abs().max().item()
        if theirs in roundoff:
            assert g.abs().max().item() <= roundoff_tol, theirs
            continue
        errors[theirs] = err / scale[theirs]
    return errors
