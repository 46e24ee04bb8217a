import math

import pytest
import torch
import torch.nn.functional as F
from torchvision.models.vgg import cfgs, make_layers

from condgen.losses.feature_matching import FeatureMatchingLoss
from condgen.losses.gan import GANLoss
from condgen.losses.kl import KLDLoss
from condgen.losses.perceptual import VGG19_FILE, VGG19_URL, VGGLoss
from condgen.networks.fpse_discriminator import FPSEDiscriminator
from condgen.networks.patch_discriminator import MultiscalePatchDiscriminator
from condgen.registry import get

# two maps of different sizes: the loss averages per-map means, it does not pool the elements
LOGITS = [torch.tensor([-2.0, 0.5]).view(1, 1, 1, 2), torch.tensor([3.0, -1.0, 0.0, 0.0]).view(1, 1, 2, 2)]


def test_hinge_on_known_logits():
    gan = GANLoss(mode="hinge")
    # real: relu(1 - x) -> (3 + 0.5) / 2 = 1.75 and (0 + 2 + 1 + 1) / 4 = 1.0
    assert gan.discriminator_real(LOGITS).item() == pytest.approx((1.75 + 1.0) / 2)
    # fake: relu(1 + x) -> (0 + 1.5) / 2 = 0.75 and (4 + 0 + 1 + 1) / 4 = 1.5
    assert gan.discriminator_fake(LOGITS).item() == pytest.approx((0.75 + 1.5) / 2)
    # generator: -mean x -> 0.75 and -0.5
    assert gan.generator(LOGITS).item() == pytest.approx((0.75 - 0.5) / 2)
    assert gan.generator(LOGITS[0]).item() == pytest.approx(0.75)  # a single map works too


def test_ls_and_original_on_known_logits():
    ls, bce = GANLoss(mode="ls"), GANLoss(mode="original")
    per_map = lambda f: sum(f(x).mean() for x in LOGITS).item() / len(LOGITS)  # noqa: E731
    assert ls.discriminator_real(LOGITS).item() == pytest.approx(per_map(lambda x: (x - 1) ** 2))
    assert ls.discriminator_fake(LOGITS).item() == pytest.approx(per_map(lambda x: x**2))
    assert ls.generator(LOGITS).item() == pytest.approx(per_map(lambda x: (x - 1) ** 2))
    # BCE with logits: -log sigmoid(x) = softplus(-x) for real, softplus(x) for fake
    assert bce.discriminator_real(LOGITS).item() == pytest.approx(per_map(lambda x: F.softplus(-x)))
    assert bce.discriminator_fake(LOGITS).item() == pytest.approx(per_map(F.softplus))
    assert bce.generator(LOGITS).item() == pytest.approx(per_map(lambda x: F.softplus(-x)))


def test_gan_loss_rejects_bad_use():
    with pytest.raises(ValueError, match="hinge"):
        GANLoss(mode="wasserstein")
    with pytest.raises(ValueError, match="generator"):
        GANLoss()(LOGITS, real=False, for_discriminator=False)
    with pytest.raises(ValueError, match="no logit maps"):
        GANLoss().generator([])


def test_feature_matching_with_weights():
    fake = [torch.ones(1, 1, 2, 2, requires_grad=True), torch.tensor([[0.0, 2.0]], requires_grad=True)]
    real = [torch.zeros(1, 1, 2, 2, requires_grad=True), torch.zeros(1, 2, requires_grad=True)]
    loss = FeatureMatchingLoss()(fake, real, [0.5, 0.25])
    assert loss.item() == pytest.approx(0.5 * 1.0 + 0.25 * 1.0)
    loss.backward()
    assert fake[0].grad is not None and all(r.grad is None for r in real)  # real branch detached


def test_feature_matching_rejects_mismatches():
    fm = FeatureMatchingLoss()
    with pytest.raises(ValueError, match="2 fake features, 1 real"):
        fm([torch.ones(1), torch.ones(1)], [torch.ones(1)], [1.0, 1.0])
    with pytest.raises(ValueError, match="feature 0"):
        fm([torch.ones(1, 2)], [torch.ones(2, 2)], [1.0])


@pytest.mark.parametrize("cls", [MultiscalePatchDiscriminator, FPSEDiscriminator])
def test_losses_read_any_discriminator_through_split(cls):
    D = cls(4, ndf=2)
    seg = F.one_hot(torch.randint(0, 4, (1, 32, 64)), 4).permute(0, 3, 1, 2).float()
    fake, real = torch.rand(1, 3, 32, 64), torch.rand(1, 3, 32, 64)
    f, r = D.split(D(fake, seg)), D.split(D(real, seg))
    fm = FeatureMatchingLoss()
    assert fm(f.features, f.features, f.feature_weights).item() == 0
    by_hand = sum(
        w * (a - b).abs().mean() for a, b, w in zip(f.features, r.features, f.feature_weights, strict=True)
    )
    torch.testing.assert_close(fm(f.features, r.features, f.feature_weights), by_hand)
    by_hand = sum(-x.mean() for x in f.logits) / len(f.logits)
    torch.testing.assert_close(GANLoss().generator(f.logits), by_hand)


def test_kld_closed_form_and_reductions():
    mu = torch.tensor([[1.0, 0.0]])
    logvar = torch.tensor([[0.0, math.log(2.0)]])
    # -0.5 * [(1 + 0 - 1 - 1) + (1 + ln 2 - 0 - 2)] = 1 - ln(2) / 2
    assert KLDLoss()(mu, logvar).item() == pytest.approx(1 - math.log(2) / 2)
    q = torch.distributions.Normal(mu, (0.5 * logvar).exp())
    p = torch.distributions.Normal(torch.zeros_like(mu), torch.ones_like(mu))
    assert KLDLoss()(mu, logvar).item() == pytest.approx(torch.distributions.kl_divergence(q, p).sum().item())
    two = (mu.repeat(2, 1), logvar.repeat(2, 1))
    assert KLDLoss()(*two).item() == pytest.approx(2 * KLDLoss()(mu, logvar).item())  # official: grows with b
    assert KLDLoss(reduction="mean")(*two).item() == pytest.approx(KLDLoss()(mu, logvar).item())
    with pytest.raises(ValueError, match="sum"):
        KLDLoss(reduction="none")


def test_vgg_loss_zero_for_identical_and_positive_otherwise():
    vgg = VGGLoss(random_init=True)
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    y = torch.rand(2, 3, 32, 32) * 2 - 1
    assert vgg(x, x.clone()).item() == 0
    fake = y.clone().requires_grad_(True)
    loss = vgg(fake, x)
    assert loss.item() > 0
    loss.backward()
    assert fake.grad.abs().sum() > 0
    assert all(not p.requires_grad and p.grad is None for p in vgg.parameters())
    assert sum(p.numel() for p in vgg.parameters()) == 12_944_960  # layers 0..29 only
    vgg.train()
    assert not vgg.vgg.training


def test_vgg_loads_torchvision_state_dict_and_matches_official_formula(tmp_path):
    ref = make_layers(cfgs["E"])  # torchvision's vgg19 `features`, random init
    sd = {f"features.{k}": v for k, v in ref.state_dict().items()}
    sd["classifier.0.weight"] = torch.zeros(1)  # a full-model file also holds the classifier
    torch.save(sd, tmp_path / "vgg19.pth")
    vgg = VGGLoss(weights=tmp_path / "vgg19.pth")
    x, y = torch.rand(1, 3, 32, 32) * 2 - 1, torch.rand(1, 3, 32, 32) * 2 - 1
    expected = 0.0
    for end, w in zip((2, 7, 12, 21, 30), (1 / 32, 1 / 16, 1 / 8, 1 / 4, 1.0), strict=True):
        fx, fy = ref[:end](x), ref[:end](y)  # relu1_1 .. relu5_1, [-1, 1] input, no ImageNet normalisation
        expected = expected + w * (fx - fy).abs().mean()
    torch.testing.assert_close(vgg(x, y), expected.detach())
    torch.save({"features.0.weight": torch.zeros(64, 3, 3, 3)}, tmp_path / "bad.pth")
    with pytest.raises(ValueError, match="features.28.bias"):
        VGGLoss(weights=tmp_path / "bad.pth")


def test_missing_vgg_weights_name_the_file_and_url(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    with pytest.raises(FileNotFoundError) as err:
        VGGLoss()
    msg = str(err.value)
    assert VGG19_FILE in msg and VGG19_URL in msg and str(tmp_path / "hub" / "checkpoints") in msg
    assert msg.splitlines()[0].endswith("run: condgen weights fetch vgg19")  # then gin adds its call site
    with pytest.raises(FileNotFoundError, match="nowhere.pth"):
        VGGLoss(weights=tmp_path / "nowhere.pth")


def test_losses_registered():
    for name in ("GANLoss", "FeatureMatchingLoss", "VGGLoss", "KLDLoss"):
        assert get(name).kind == "loss"
