"""CCFPSEGenerator and the CC-FPSE Table 2 generator cells: forward passes, conditions, official sizes."""

from functools import partial

import gin
import pytest
import torch
import torch.nn.functional as F

from condgen import registry
from condgen.blocks.cond_conv import CCResBlock
from condgen.blocks.condition import LabelMapCondition
from condgen.blocks.spade import SPADEResBlock
from condgen.blocks.weight_pyramid import FeaturePyramidCondition
from condgen.networks.ccfpse_generator import CCFPSEGenerator
from condgen.networks.generator import Generator
from condgen.utils import count_parameters

OFFICIAL_RENAMES = CCFPSEGenerator.OFFICIAL_RENAMES

S = 5


def _seg(b=2, h=32, w=32):
    return F.one_hot(torch.randint(0, S, (b, h, w)), S).permute(0, 3, 1, 2).float()


@pytest.mark.parametrize(
    "block, condition",
    [
        (SPADEResBlock, LabelMapCondition),  # SPADE
        (SPADEResBlock, FeaturePyramidCondition),  # SPADE w/ FP
        (CCResBlock, LabelMapCondition),  # CC w/o FP
        (CCResBlock, FeaturePyramidCondition),  # CC w/ FP (CC-FPSE)
    ],
)
def test_table2_generator_cells_forward_and_backward(block, condition):
    G = Generator(S, crop_size=32, ngf=2, use_vae=True, block=block, condition=condition)
    expected_cond_nc = S + 2 if condition is FeaturePyramidCondition else S
    assert G.condition.cond_nc == expected_cond_nc
    fake = G(_seg(), torch.randn(2, 256))
    assert fake.shape == (2, 3, 32, 32) and fake.abs().max() <= 1
    fake.square().mean().backward()
    missing = [n for n, p in G.named_parameters() if p.requires_grad and p.grad is None]
    assert missing == []  # every trainable parameter is used (DDP without find_unused_parameters)


def test_each_block_gets_the_pyramid_level_at_its_resolution():
    G = CCFPSEGenerator(S, crop_size=32, ngf=2, use_vae=False)
    seen = {}
    for name, *_ in G.schedule:
        getattr(G, name).register_forward_hook(lambda m, args, out, name=name: seen.__setitem__(name, args))
    G(_seg())
    for name, (x, cond) in seen.items():
        assert cond.shape[1] == S + 2 and cond.shape[-2:] == x.shape[-2:], name
    # 'normal': no upsampling between G_middle_0 and G_middle_1, so both read the same level.
    assert seen["G_middle_0"][1].shape[-2:] == seen["G_middle_1"][1].shape[-2:] == (2, 2)


def test_more_mode_cityscapes_shape():
    block = partial(CCResBlock, hidden=8)
    G = CCFPSEGenerator(S, crop_size=128, aspect_ratio=2.0, ngf=2, num_upsampling_layers="more", block=block)
    assert G.condition.num_levels == 7 and len(G.condition.dec) == 6
    assert G(_seg(h=64, w=128)).shape == (2, 3, 64, 128)


def test_defaults_registry_and_gin():
    assert registry.get("CCFPSEGenerator", "generator").cls is CCFPSEGenerator
    gin.parse_config(["CCResBlock.hidden = 8", "cond_depthwise_conv2d.impl = 'reference'"])
    G = registry.create("generator", "CCFPSEGenerator", semantic_nc=S, crop_size=32, ngf=2)
    assert G.use_vae and isinstance(G.head_0, CCResBlock) and isinstance(G.condition, FeaturePyramidCondition)
    assert G.up_3.gen_weights1[0].out_channels == 8  # the binding reaches every block
    G.eval()
    seg, z = _seg(), torch.randn(2, 256)
    with torch.no_grad():
        ref = G(seg, z)
        gin.clear_config()  # back to the lean default
        lean = G(seg, z)
    torch.testing.assert_close(lean, ref, rtol=0, atol=1e-5)


def test_renames_cover_every_pyramid_level():
    assert OFFICIAL_RENAMES["labelenc1.0."] == "condition.enc.0."
    assert OFFICIAL_RENAMES["labeldec6.0."] == "condition.dec.5."
    assert all(not k.startswith(("head", "G_middle", "up_")) for k in OFFICIAL_RENAMES)


# Official parameter counts (reference §2.6), built on the meta device: no memory, no init cost.
@pytest.mark.parametrize(
    "kwargs, expected",
    [
        (dict(semantic_nc=184, use_vae=False), 126_793_859),  # COCO, the fixture README's exact count
        (dict(semantic_nc=184, use_vae=True), 141.94e6),  # COCO VAE
        (dict(semantic_nc=151, use_vae=True), 140.70e6),  # ADE20K VAE
        (
            dict(semantic_nc=36, use_vae=True, crop_size=512, aspect_ratio=2.0, num_upsampling_layers="more"),
            128.06e6,
        ),  # Cityscapes VAE
    ],
)
def test_official_parameter_counts(kwargs, expected):
    with torch.device("meta"):
        G = CCFPSEGenerator(**kwargs)
    n = count_parameters(G)
    if isinstance(expected, int):
        assert n == expected
    else:
        assert round(n / 1e6, 2) == round(expected / 1e6, 2)
    assert len(G.state_dict()) == (519 if "more" in kwargs.values() else 495)  # official key counts
