"""Per-image and local resampling with the 3-D noise."""

from functools import partial

import pytest
import torch
import torch.nn.functional as F

from condgen.blocks.noise import NoiseCondition
from condgen.blocks.spade import SPADE, SPADEResBlock
from condgen.eval.resample import local_resample, resample_images
from condgen.networks.oasis_generator import OASISGenerator
from condgen.networks.spade_generator import SPADEGenerator


@pytest.fixture
def G():
    block = partial(SPADEResBlock, norm=partial(SPADE, hidden=8))
    return OASISGenerator(
        3, crop_size=32, ngf=2, block=block, condition=partial(NoiseCondition, z_dim=4)
    ).eval()


def test_noise_condition_inputs(G):
    seg = F.one_hot(torch.randint(0, 3, (2, 32, 32)), 3).permute(0, 3, 1, 2).float()
    z = torch.randn(2, 4)
    x = G.condition.label_input(seg, z)
    assert x.shape == (2, 7, 32, 32) and torch.equal(x[:, 4:], seg)
    assert torch.equal(x[:, :4], z[:, :, None, None].expand(2, 4, 32, 32))
    assert torch.equal(G(seg, z), G(seg, x[:, :4]))  # a replicated map is the vector
    with pytest.raises(ValueError):
        G.condition.label_input(seg, torch.randn(2, 5))


def test_resampling(G):
    seg = torch.zeros(2, 3, 32, 32)
    seg[:, 0, :, :16], seg[:, 1, :, 16:] = 1, 1
    imgs = resample_images(G, seg, 2, generator=torch.Generator().manual_seed(0))
    assert imgs.shape == (2, 2, 3, 32, 32) and not torch.equal(imgs[0], imgs[1])
    z = torch.randn(2, 4)
    img, z_map = local_resample(G, seg, z, channel=1)
    assert torch.equal(z_map[..., :16], z[:, :, None, None].expand(2, 4, 32, 16))
    assert not torch.equal(z_map[..., 16:], z[:, :, None, None].expand(2, 4, 32, 16))
    assert img.shape == (2, 3, 32, 32)
    with pytest.raises(TypeError):
        resample_images(SPADEGenerator(3, crop_size=32, ngf=2), seg, 1)
