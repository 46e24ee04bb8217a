"""CCResBlock: shapes, official keys, the forward order of Sec. 2.2, attention gating, frozen unused BNs."""

import pytest
import torch
import torch.nn.functional as F

from condgen.blocks.cond_conv import CCResBlock, CondDepthwiseConv
from condgen.convert.keys import rename_official
from condgen.ops.cond_depthwise import cond_depthwise_conv2d_reference
from condgen.utils import count_parameters
from tests.conftest import load_fixture

COND_NC = 5


def _block(in_ch=8, out_ch=4, **kw):
    return CCResBlock(in_ch, out_ch, COND_NC, hidden=6, **kw)


@pytest.mark.parametrize("in_ch, out_ch", [(8, 8), (8, 4)])
def test_shapes_and_condition_resize(in_ch, out_ch):
    block = _block(in_ch, out_ch)
    x, cond = torch.randn(2, in_ch, 8, 6), torch.randn(2, COND_NC, 32, 24)
    out = block(x, cond)
    assert out.shape == (2, out_ch, 8, 6)
    # A condition already at the block's size gives the same result as one nearest-resized to it.
    block.eval()
    same = block(x, F.interpolate(cond, size=(8, 6), mode="nearest"))
    torch.testing.assert_close(block(x, cond), same)
    assert block.learned_shortcut == (in_ch != out_ch)


def _manual_forward(block, x, cond):
    """Reference §2.2 step by step, with the unfold formulation of the conditional conv."""
    dx = cond_depthwise_conv2d_reference(block.norm_1(x), block.gen_weights1(cond))
    dx = F.leaky_relu(block.conv_1(dx) * torch.sigmoid(block.gen_se_weights1[:3](cond)), 0.2)
    dx = cond_depthwise_conv2d_reference(block.norm_2(dx), block.gen_weights2(cond))
    dx = F.leaky_relu(block.conv_3(dx) * torch.sigmoid(block.gen_se_weights2[:3](cond)), 0.2)
    shortcut = block.conv_s(block.norm_s(x, cond)) if block.learned_shortcut else x
    return shortcut + dx


@pytest.mark.parametrize("in_ch, out_ch", [(8, 8), (8, 4)])
def test_forward_order_matches_reference_section(in_ch, out_ch):
    block = _block(in_ch, out_ch).eval()
    with torch.no_grad():  # non-trivial BN statistics and affine params, so norm order matters
        for m in block.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-1, 1)
                m.running_var.uniform_(0.5, 2)
                if m.affine:
                    m.weight.uniform_(0.5, 1.5)
                    m.bias.uniform_(-0.5, 0.5)
    x, cond = torch.randn(2, in_ch, 8, 8), torch.randn(2, COND_NC, 8, 8)
    torch.testing.assert_close(block(x, cond), _manual_forward(block, x, cond), rtol=1e-5, atol=1e-6)


def test_closed_attention_gate_leaves_only_the_shortcut():
    block = _block(8, 8)
    with torch.no_grad():
        block.gen_se_weights2[2].weight.zero_()
        block.gen_se_weights2[2].bias.fill_(-1e4)  # sigmoid -> 0: the residual branch is gated off
    x = torch.randn(2, 8, 6, 6)
    torch.testing.assert_close(block(x, torch.randn(2, COND_NC, 6, 6)), x)


def test_lean_and_reference_impl_agree_in_the_block():
    x, cond = torch.randn(2, 8, 8, 8), torch.randn(2, COND_NC, 8, 8)
    torch.manual_seed(1)
    lean = _block(8, 4).eval()
    torch.manual_seed(1)
    ref = _block(8, 4, impl="reference").eval()
    assert all(m.impl == "reference" for m in ref.modules() if isinstance(m, CondDepthwiseConv))
    torch.testing.assert_close(lean(x, cond), ref(x, cond), rtol=0, atol=1e-6)


def test_unused_bns_are_frozen_untouched_and_optional():
    block = _block(8, 4)
    unused = [block.conv_0.norm_layer, block.norm_0, block.conv_2.norm_layer]
    before = [bn.running_mean.clone() for bn in unused]
    block(torch.randn(2, 8, 6, 6), torch.randn(2, COND_NC, 6, 6)).square().mean().backward()
    for bn, b in zip(unused, before, strict=True):
        assert not bn.weight.requires_grad and bn.weight.grad is None
        assert torch.equal(bn.running_mean, b)  # never called
    trainable = [n for n, p in block.named_parameters() if p.requires_grad]
    assert all(p.grad is not None for p in block.parameters() if p.requires_grad), trainable  # DDP-safe
    lean = _block(8, 4, official_unused_bn=False)
    assert count_parameters(block) - count_parameters(lean) == 2 * (8 + 4 + 4)
    assert not any("norm_layer" in k or k.startswith("norm_0") for k in lean.state_dict())


@pytest.mark.parametrize("name, in_ch, out_ch", [("head_0", 32, 32), ("up_0", 32, 16)])
def test_state_dict_keys_and_shapes_equal_official(name, in_ch, out_ch):
    fx = load_fixture("ccfpse_ngf2_label12_vae.pt")
    theirs = rename_official({k[len(name) + 1 :]: v for k, v in fx["G"].items() if k.startswith(name + ".")})
    ours = CCResBlock(in_ch, out_ch, 16).state_dict()  # cond_nc = 14 labels + pyramid width 2
    assert sorted(ours) == sorted(theirs)
    assert all(ours[k].shape == theirs[k].shape for k in ours)


def test_other_kernel_size():
    block = _block(4, 4, kernel_size=5)
    assert block.gen_weights1[2].out_channels == 4 * 25
    assert block(torch.randn(1, 4, 5, 5), torch.randn(1, COND_NC, 5, 5)).shape == (1, 4, 5, 5)


def test_wrong_condition_channels_fail_clearly():
    with pytest.raises(ValueError, match="built for 5 condition channels got 6"):
        _block()(torch.randn(1, 8, 4, 4), torch.randn(1, COND_NC + 1, 4, 4))
