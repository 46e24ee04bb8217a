"""The parity fixtures' parameter recipe rebuilds the values the fixture READMEs quote."""

import torch

from tests.fixtures.recipe import build_state_dict, recipe_ints, recipe_tensor, sha256_f32


def test_recipe_values_and_scale():
    assert recipe_ints(7, 6).tolist() == [15578, -26050, 9998, 32050, 25468, 30982]  # the READMEs' self-check
    t = recipe_tensor(7, (2, 3), -3)
    assert torch.equal(t * 2**18, torch.tensor([[15578.0, -26050, 9998], [32050, 25468, 30982]]))
    assert t.abs().max() < 2**-3


def test_build_state_dict_keeps_buffers_and_refuses_clashes():
    sd = build_state_dict({"w": {"seed": 1, "exp": 0, "shape": [2]}}, {"b": torch.ones(1)})
    assert set(sd) == {"w", "b"} and sha256_f32(sd["w"]) != sha256_f32(recipe_tensor(2, (2,), 0))
    try:
        build_state_dict({"w": {"seed": 1, "exp": 0, "shape": [2]}}, {"w": torch.ones(2)})
    except ValueError as e:
        assert "w" in str(e)
    else:
        raise AssertionError("a key both in the recipe and the buffers must be refused")
