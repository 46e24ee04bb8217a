"""The compact SDM parity fixture (tests/fixtures/sdm, by tests/fixtures/make_sdm.py) and the tiny UNet."""

import pytest
import torch

from condgen.networks.sdm_unet import SDMUNet
from tests.conftest import REPO, one_thread
from tests.fixtures.recipe import build_state_dict, sha256_f32

_one_thread = pytest.fixture(autouse=True)(one_thread)  # small tensors; the cores are shared
FIXTURE = REPO / "tests" / "fixtures" / "sdm" / "sdm_tiny.pt"
# the fixture's flags: --num_channels 32 --channel_mult 1,2,2 --num_res_blocks 1 --attention_resolutions 16,8
# --num_head_channels 16 --image_size 32 (the input is 32 x 64)
TINY = dict(
    crop_size=32,
    model_channels=32,
    channel_mult=(1, 2, 2),
    num_res_blocks=1,
    attention_resolutions=(16, 8),
    num_head_channels=16,
)


@pytest.fixture(scope="session")
def sdm_fx() -> dict:
    return torch.load(FIXTURE, weights_only=True)


def tiny_unet(cond_nc: int = 13, **kwargs) -> SDMUNet:
    return SDMUNet(cond_nc, **{**TINY, **kwargs})


@pytest.fixture(scope="session")
def original_state(sdm_fx) -> dict[str, dict[str, torch.Tensor]]:
    """The original models' parameters (original key names), rebuilt from the fixture's recipe."""
    states = {name: build_state_dict(sdm_fx["recipe"][name], {}) for name in ("UNet", "UNet_noinst")}
    for key, digest in sdm_fx["param_sha256"].items():
        assert sha256_f32(states["UNet"][key]) == digest
    return states


@pytest.fixture(scope="session")
def unet(original_state) -> SDMUNet:
    """The tiny UNet (13 condition channels) with the fixture's parameters, in eval mode."""
    net = tiny_unet(13).eval()
    net.load_state_dict(original_state["UNet"], strict=True)
    return net
