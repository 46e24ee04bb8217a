"""SPADE layer and SPADE residual block."""

from functools import partial

import gin
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from condgen.blocks.norm import SyncableBatchNorm2d
from condgen.blocks.spade import SPADE, SPADEResBlock


def _spade(norm_nc=4, label_nc=3, **kw):
    return SPADE(norm_nc, label_nc, **kw)


# ---------------------------------------------------------------- SPADE


def test_spade_modulation_equation():
    """out = x_hat * (1 + gamma(seg)) + beta(seg) with the shared conv + ReLU in front (Eq. 1)."""
    layer = _spade(param_free="instance", hidden=8)
    for conv in (layer.mlp_shared[0], layer.mlp_gamma, layer.mlp_beta):
        nn.init.normal_(conv.weight, std=0.3)
        nn.init.normal_(conv.bias, std=0.3)
    x, seg = torch.randn(2, 4, 8, 8), torch.rand(2, 3, 8, 8)
    x_hat = F.instance_norm(x, eps=1e-5)
    actv = F.relu(F.conv2d(seg, layer.mlp_shared[0].weight, layer.mlp_shared[0].bias, padding=1))
    gamma = F.conv2d(actv, layer.mlp_gamma.weight, layer.mlp_gamma.bias, padding=1)
    beta = F.conv2d(actv, layer.mlp_beta.weight, layer.mlp_beta.bias, padding=1)
    torch.testing.assert_close(layer(x, seg), x_hat * (1 + gamma) + beta)


def test_spade_constant_gamma_beta():
    layer = _spade(param_free="instance")
    for conv in (layer.mlp_gamma, layer.mlp_beta):
        nn.init.zeros_(conv.weight)
    nn.init.constant_(layer.mlp_gamma.bias, 0.5)
    nn.init.constant_(layer.mlp_beta.bias, -2.0)
    x = torch.randn(2, 4, 8, 8)
    torch.testing.assert_close(layer(x, torch.rand(2, 3, 8, 8)), F.instance_norm(x) * 1.5 - 2.0)


def test_spade_resizes_seg_with_nearest():
    layer = _spade(param_free="instance")
    x, seg = torch.randn(2, 4, 8, 16), torch.rand(2, 3, 32, 64)
    out = layer(x, seg)
    assert out.shape == x.shape
    torch.testing.assert_close(out, layer(x, F.interpolate(seg, size=(8, 16), mode="nearest")))


@pytest.mark.parametrize("k", [1, 3, 5])
def test_spade_kernel_sizes(k):
    layer = _spade(kernel_size=k, hidden=16)
    assert layer.mlp_shared[0].weight.shape == (16, 3, k, k)
    assert layer.mlp_gamma.weight.shape == layer.mlp_beta.weight.shape == (4, 16, k, k)
    x = torch.randn(2, 4, 7, 9)
    assert layer(x, torch.rand(2, 3, 7, 9)).shape == x.shape


@pytest.mark.parametrize("k", [0, 2, 4, -1])
def test_spade_bad_kernel_size(k):
    with pytest.raises(ValueError, match="kernel_size"):
        _spade(kernel_size=k)


@pytest.mark.parametrize(
    "name, cls",
    [("instance", nn.InstanceNorm2d), ("batch", nn.BatchNorm2d), ("syncbatch", SyncableBatchNorm2d)],
)
def test_spade_param_free_choices(name, cls):
    norm = _spade(param_free=name).param_free_norm
    assert type(norm) is cls and not norm.affine
    assert not any(True for _ in norm.parameters())  # parameter-free


def test_spade_param_free_callable_and_unknown():
    assert isinstance(_spade(param_free=nn.Identity).param_free_norm, nn.Identity)
    with pytest.raises(ValueError, match="instance"):
        _spade(param_free="group")


def test_spade_official_keys():
    keys = set(_spade(param_free="syncbatch").state_dict())
    assert keys == {
        "param_free_norm.running_mean", "param_free_norm.running_var", "param_free_norm.num_batches_tracked",
        "mlp_shared.0.weight", "mlp_shared.0.bias", "mlp_gamma.weight", "mlp_gamma.bias",
        "mlp_beta.weight", "mlp_beta.bias",
    }  # fmt: skip


# ---------------------------------------------------------------- SPADEResBlock


@pytest.mark.parametrize("in_ch, out_ch", [(8, 8), (8, 4), (4, 8)])
def test_resblock_shortcut_learned_iff_channels_differ(in_ch, out_ch):
    block = SPADEResBlock(in_ch, out_ch, 3)
    learned = in_ch != out_ch
    assert block.learned_shortcut == learned
    assert hasattr(block, "conv_s") == learned and hasattr(block, "norm_s") == learned
    mid = min(in_ch, out_ch)
    assert block.conv_0.weight.shape == (mid, in_ch, 3, 3)
    assert block.conv_1.weight.shape == (out_ch, mid, 3, 3)
    assert block.norm_0.mlp_gamma.out_channels == in_ch and block.norm_1.mlp_gamma.out_channels == mid
    if learned:
        assert block.conv_s.weight.shape == (out_ch, in_ch, 1, 1) and block.conv_s.bias is None
        assert block.norm_s.mlp_gamma.out_channels == in_ch
    x = torch.randn(2, in_ch, 8, 8)
    assert block(x, torch.rand(2, 3, 16, 16)).shape == (2, out_ch, 8, 8)


@pytest.mark.parametrize("spectral", [True, False])
def test_resblock_spectral_keys(spectral):
    keys = set(SPADEResBlock(8, 4, 3, spectral=spectral).state_dict())
    for conv in ("conv_0", "conv_1", "conv_s"):
        sn = {f"{conv}.parametrizations.weight.{s}" for s in ("original", "0._u", "0._v")}
        assert sn <= keys if spectral else not sn & keys
        assert (f"{conv}.weight" in keys) != spectral
    assert {"conv_0.bias", "conv_1.bias"} <= keys and "conv_s.bias" not in keys
    assert not any(k.startswith("norm_") and "parametrizations" in k for k in keys)  # SN on convs only


def test_resblock_forward_is_preactivation_residual():
    """Identity shortcut, and the learned one has no activation: zero conv_1 leaves only the shortcut."""
    seg = torch.rand(2, 3, 8, 8)
    for in_ch, out_ch in ((4, 4), (4, 2)):
        block = SPADEResBlock(in_ch, out_ch, 3, norm=partial(SPADE, param_free="instance"), spectral=False)
        nn.init.zeros_(block.conv_1.weight)
        nn.init.zeros_(block.conv_1.bias)
        x = torch.randn(2, in_ch, 8, 8)
        want = x if in_ch == out_ch else block.conv_s(block.norm_s(x, seg))
        torch.testing.assert_close(block(x, seg), want)
    # full path, written out
    block = SPADEResBlock(4, 2, 3, norm=partial(SPADE, param_free="instance"), spectral=False)
    x = torch.randn(2, 4, 8, 8)
    dx = block.conv_0(F.leaky_relu(block.norm_0(x, seg), 0.2))
    dx = block.conv_1(F.leaky_relu(block.norm_1(dx, seg), 0.2))
    torch.testing.assert_close(block(x, seg), block.conv_s(block.norm_s(x, seg)) + dx)


def test_resblock_norm_argument_and_gin():
    block = SPADEResBlock(4, 2, 3, norm=partial(SPADE, kernel_size=1, hidden=8))
    assert all(n.mlp_gamma.kernel_size == (1, 1) for n in (block.norm_0, block.norm_1, block.norm_s))
    gin.parse_config("SPADE.kernel_size = 5\nSPADE.param_free = 'instance'\nSPADEResBlock.spectral = False")
    block = SPADEResBlock(4, 2, 3)
    for n in (block.norm_0, block.norm_1, block.norm_s):
        assert n.mlp_shared[0].kernel_size == (5, 5) and isinstance(n.param_free_norm, nn.InstanceNorm2d)
    assert "conv_0.weight" in block.state_dict()


def test_resblock_gradients_reach_every_parameter():
    block = SPADEResBlock(4, 2, 3)
    x = torch.randn(2, 4, 8, 8, requires_grad=True)
    block(x, torch.rand(2, 3, 8, 8)).square().mean().backward()
    assert x.grad is not None
    for name, p in block.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


# ---------------------------------------------------------------- lean backward (gin spade_lean_backward)


def _lean_seg(b=2, nc=5, size=16):
    labels = torch.randint(0, nc, (b, size // 4, size // 4)).repeat_interleave(4, 1).repeat_interleave(4, 2)
    return F.one_hot(labels, nc).permute(0, 3, 1, 2).double().contiguous()


def _block_step(lean, block, x, seg):
    """Two training forwards (running stats advance) + backward; everything the step produces."""
    gin.bind_parameter("spade_lean_backward.enabled", lean)
    x = x.clone().requires_grad_()
    out = block(block(x, seg), seg) if block.conv_1.out_channels == x.shape[1] else block(x, seg)
    out.backward(torch.linspace(-1, 1, out.numel(), dtype=out.dtype).view_as(out))
    grads = {n: p.grad.clone() for n, p in block.named_parameters()}
    block.zero_grad(set_to_none=True)
    return out.detach(), x.grad, grads, {n: b.clone() for n, b in block.named_buffers()}


@pytest.mark.parametrize("in_ch,out_ch,param_free",
                         [(6, 6, "syncbatch"), (6, 4, "batch"), (6, 4, "instance")])
def test_lean_backward_same_outputs_and_gradients_float64(in_ch, out_ch, param_free):
    """Outputs, input and parameter gradients and the running statistics: identical with the switch on/off."""
    import copy

    torch.manual_seed(0)
    block = SPADEResBlock(in_ch, out_ch, 5, norm=partial(SPADE, hidden=8, param_free=param_free)).double()
    x, seg = torch.randn(2, in_ch, 8, 8, dtype=torch.float64), _lean_seg()
    on = _block_step(True, copy.deepcopy(block), x, seg)
    off = _block_step(False, copy.deepcopy(block), x, seg)
    torch.testing.assert_close(on, off, rtol=0, atol=0)


def test_lean_backward_gradcheck():
    """The fused norm + modulation's backward against finite differences (x, gamma and beta)."""
    from condgen.blocks.spade import _NormModulate

    torch.manual_seed(0)
    x, gamma, beta = (torch.randn(2, 3, 4, 4, dtype=torch.float64, requires_grad=True) for _ in range(3))
    assert torch.autograd.gradcheck(lambda x, g, b: _NormModulate.apply(x, g, b, None, None, 0.1, 1e-5),
                                    (x, gamma, beta))


def test_lean_backward_saves_less():
    """The SPADE generator keeps <= 0.7x the bytes for backward of the plain ops with both switches on."""
    from benchmarks.memory import saved_tensor_bytes
    from condgen.networks.spade_generator import SPADEGenerator
    from condgen.ops.label_conv import use_label_sparse

    seg = _lean_seg(b=1, nc=30, size=64).float()
    saved = {}
    for mode, lean in (("off", False), ("on", False), ("on", True)):
        gin.bind_parameter("spade_lean_backward.enabled", lean)
        with use_label_sparse(mode):
            torch.manual_seed(0)
            G = SPADEGenerator(30, crop_size=64, ngf=8, use_vae=False)
            keep = [*G.parameters(), *G.buffers(), seg]
            _, saved[mode, lean] = saved_tensor_bytes(lambda G=G: G(seg), exclude=keep)
    assert saved["on", True] < 0.8 * saved["on", False], saved
    assert saved["on", True] <= 0.7 * saved["off", False], saved
