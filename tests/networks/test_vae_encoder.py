"""VAEEncoder (official ConvEncoder, any crop size) and reparameterize."""

import pytest
import torch
import torch.nn.functional as F

from condgen.networks.vae_encoder import VAEEncoder, reparameterize
from condgen.registry import create
from condgen.utils import count_parameters

# (crop_size, aspect_ratio) -> (H, W) of the images, stride-2 layers, channels x final map / ngf.
# The most layers (<= 6) that leave >= 4 pixels a side: 6 and 4x4 at 256, as the official encoder.
SIZES = [
    (8, 1.0, (8, 8), 1, 1 * 4 * 4),
    (32, 1.0, (32, 32), 3, 4 * 4 * 4),
    (64, 1.0, (64, 64), 4, 8 * 4 * 4),
    (128, 1.0, (128, 128), 5, 8 * 4 * 4),
    (256, 1.0, (256, 256), 6, 8 * 4 * 4),
    (256, 2.0, (128, 256), 5, 8 * 4 * 8),
    (512, 2.0, (256, 512), 6, 8 * 4 * 8),
    (512, 1.0, (512, 512), 6, 8 * 8 * 8),
    (200, 1.0, (200, 200), 6, 8 * 4 * 4),  # not a power of two: each stride-2 conv gives ceil(n / 2)
]


@pytest.mark.parametrize("crop, ar, hw, layers, flat", SIZES)
def test_any_crop_size(crop, ar, hw, layers, flat):
    E = VAEEncoder(ngf=2, crop_size=crop, aspect_ratio=ar)
    assert E.size == hw and E.num_layers == layers
    assert [n for n, _ in E.named_children() if n.startswith("layer")] == [
        f"layer{i + 1}" for i in range(layers)
    ]
    assert E.fc_mu.in_features == E.fc_var.in_features == 2 * flat
    for mode in ("train", "eval"):  # train: InstanceNorm needs > 1 pixel in every map
        E.train(mode == "train")
        mu, logvar = E(torch.randn(2, 3, *hw))
        assert mu.shape == logvar.shape == (2, 256)
        assert mu.std(0).min() > 0  # the image reaches mu: no map collapsed to one normalised pixel


def test_too_small_images_rejected():
    with pytest.raises(ValueError, match="at least 8 pixels"):
        VAEEncoder(crop_size=16, aspect_ratio=4.0)


def test_official_structure_and_keys():
    E = VAEEncoder(ngf=2)
    keys = set(E.state_dict())
    for i in range(1, 7):
        conv, norm = getattr(E, f"layer{i}")
        assert (
            conv.bias is None
            and conv.stride == (2, 2)
            and conv.kernel_size == (3, 3)
            and conv.padding == (1, 1)
        )
        assert isinstance(norm, torch.nn.InstanceNorm2d) and not norm.affine
        assert {f"layer{i}.0.parametrizations.weight.{s}" for s in ("original", "0._u", "0._v")} <= keys
    assert {"fc_mu.weight", "fc_mu.bias", "fc_var.weight", "fc_var.bias"} <= keys
    assert len(keys) == 22  # as the official netE (hook-API names renamed one to one)


def test_forward_written_out():
    """lrelu(0.2) between layers and after the last, flatten, two linear heads."""
    E = VAEEncoder(ngf=2, crop_size=64)
    img = torch.randn(2, 3, 64, 64)
    x = E.layer1(img)
    for i in range(2, 5):
        x = getattr(E, f"layer{i}")(F.leaky_relu(x, 0.2))
    x = F.leaky_relu(x, 0.2).flatten(1)
    mu, logvar = E(img)
    torch.testing.assert_close(mu, E.fc_mu(x))
    torch.testing.assert_close(logvar, E.fc_var(x))


def test_other_input_sizes_are_resized_bilinearly():
    E = VAEEncoder(ngf=2, crop_size=64).eval()
    img = torch.randn(2, 3, 100, 80)
    want = E(F.interpolate(img, size=(64, 64), mode="bilinear", align_corners=False))
    for a, b in zip(E(img), want, strict=True):
        torch.testing.assert_close(a, b)


def test_official_resize_policy():
    """official_resize: work at 256x256 as the official code (Cityscapes squashed), same parameters."""
    E = VAEEncoder(ngf=2, crop_size=512, aspect_ratio=2.0, official_resize=True).eval()
    assert E.size == (256, 256) and E.num_layers == 6 and E.fc_mu.in_features == 2 * 8 * 4 * 4
    img = torch.randn(1, 3, 256, 512)
    squashed = F.interpolate(img, size=(256, 256), mode="bilinear", align_corners=False)
    torch.testing.assert_close(E(img)[0], E(squashed)[0])
    # at crop 256, aspect 1 both policies are the same network; below 256 the official one would crash
    for crop in (256, 128):
        a = VAEEncoder(ngf=2, crop_size=crop, official_resize=True)
        assert {k: v.shape for k, v in a.state_dict().items()} == {
            k: v.shape for k, v in VAEEncoder(ngf=2).state_dict().items()
        }
        assert a(torch.randn(2, 3, crop, crop))[0].shape == (2, 256)


def test_z_dim_and_registry():
    E = create("encoder", "VAEEncoder", ngf=2, crop_size=32, z_dim=16)
    mu, logvar = E(torch.randn(3, 3, 32, 32))
    assert mu.shape == logvar.shape == (3, 16)


def test_gradients_flow():
    E = VAEEncoder(ngf=2, crop_size=64).train()
    img = torch.randn(2, 3, 64, 64, requires_grad=True)
    mu, logvar = E(img)
    (reparameterize(mu, logvar).square().mean() + logvar.mean()).backward()
    assert img.grad is not None
    for name, p in E.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_reparameterize():
    mu, logvar = torch.randn(4, 8), torch.randn(4, 8)
    torch.manual_seed(1)
    z = reparameterize(mu, logvar)
    torch.manual_seed(1)
    eps = torch.randn(4, 8)
    torch.testing.assert_close(z, mu + eps * torch.exp(0.5 * logvar))
    torch.testing.assert_close(reparameterize(mu, torch.full_like(mu, -80.0)), mu)  # std ~ 0
    big = reparameterize(torch.full((20000,), 3.0), torch.full((20000,), 2 * torch.log(torch.tensor(0.5))))
    assert abs(big.mean().item() - 3.0) < 0.02 and abs(big.std().item() - 0.5) < 0.02


def test_parameter_count_matches_official():
    with torch.device("meta"):
        assert count_parameters(VAEEncoder()) == 10_463_424  # ngf 64, crop 256
        assert (
            count_parameters(VAEEncoder(crop_size=512, aspect_ratio=2.0, official_resize=True)) == 10_463_424
        )
