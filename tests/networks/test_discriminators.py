import gin
import pytest
import torch
import torch.nn.functional as F

from condgen.blocks.semantic_embedding import SemanticEmbedding
from condgen.networks.fpse_discriminator import FPSEDiscriminator
from condgen.networks.patch_discriminator import MultiscalePatchDiscriminator
from condgen.registry import create, get
from condgen.utils import count_parameters

S = 5  # semantic_nc of the small tests


def inputs(h: int, w: int, b: int = 2, s: int = S) -> tuple[torch.Tensor, torch.Tensor]:
    img = torch.rand(b, 3, h, w) * 2 - 1
    seg = F.one_hot(torch.randint(0, s, (b, h, w)), s).permute(0, 3, 1, 2).float()
    return img, seg


def patch_sizes(n: int, n_layers: int = 4) -> list[int]:
    """Official geometry: k4 p2, stride 2 except the last intermediate layer and the logits (stride 1)."""
    sizes = []
    for layer in range(n_layers + 1):
        stride = 2 if layer < n_layers - 1 else 1
        n = (n + 2 * 2 - 4) // stride + 1
        sizes.append(n)
    return sizes


def shapes(out: list) -> list:
    return [[tuple(t.shape) for t in group] for group in out]


@pytest.mark.parametrize("semantic_embedding", [False, True])
@pytest.mark.parametrize("size", [(64, 64), (64, 128)])
def test_multiscale_patch_shapes(size, semantic_embedding):
    h, w = size
    D = MultiscalePatchDiscriminator(S, ndf=4, semantic_embedding=semantic_embedding)
    out = D(*inputs(h, w))
    expected = []
    for scale in range(2):
        hs, ws = patch_sizes(h // 2**scale), patch_sizes(w // 2**scale)
        expected.append([(2, c, a, b) for c, a, b in zip((4, 8, 16, 32, 1), hs, ws, strict=True)])
    assert shapes(out) == expected
    assert patch_sizes(256)[-1] == 35 and patch_sizes(128)[-1] == 19  # the reference's 256 px logits


def test_patch_channel_cap_and_layers():
    D = MultiscalePatchDiscriminator(S, ndf=128, n_layers=5, num_D=3)
    widths = [getattr(D.discriminator_0, f"model{n}")[0][0].out_channels for n in range(1, 5)]
    assert widths == [256, 512, 512, 512]  # official cap min(2 * nf, 512)
    out = D(*inputs(64, 64, b=1))
    assert len(out) == 3 and all(len(scale) == 6 for scale in out)


@pytest.mark.parametrize("size", [(64, 64), (64, 128), (48, 80)])
@pytest.mark.parametrize("semantic_embedding", [True, False])
def test_fpse_shapes(size, semantic_embedding):
    h, w = size
    D = FPSEDiscriminator(S, ndf=4, semantic_embedding=semantic_embedding)
    feats, preds = D(*inputs(h, w))
    up = lambda n, k: -(-n // 2**k)  # noqa: E731  (3x3 s2 p1 convs: ceil)
    assert [tuple(f.shape) for f in feats] == [
        (2, c, up(h, k), up(w, k)) for c, k in ((8, 2), (16, 3), (32, 4), (32, 5))
    ]
    assert [tuple(p.shape) for p in preds] == [(2, 1, up(h, k), up(w, k)) for k in (2, 3, 4)]


def test_label_map_enters_where_documented():
    img, seg = inputs(64, 64)
    seg2 = seg.roll(1, dims=1)  # other labels, same image
    for D, feats_see_seg in [
        (MultiscalePatchDiscriminator(S, ndf=4), True),
        (MultiscalePatchDiscriminator(S, ndf=4, semantic_embedding=True), False),
        (FPSEDiscriminator(S, ndf=4), False),
        (FPSEDiscriminator(S, ndf=4, semantic_embedding=False), True),
    ]:
        D.eval()
        with torch.no_grad():
            a, b = D.split(D(img, seg)), D.split(D(img, seg2))
        same_feats = all(torch.equal(x, y) for x, y in zip(a.features, b.features, strict=True))
        assert same_feats != feats_see_seg, type(D).__name__
        assert all(not torch.allclose(x, y) for x, y in zip(a.logits, b.logits, strict=True))


def test_image_only_variants_take_three_channels():
    assert (
        MultiscalePatchDiscriminator(S, ndf=4, semantic_embedding=True).discriminator_1.model0[0].in_channels
        == 3
    )
    assert MultiscalePatchDiscriminator(S, ndf=4).discriminator_1.model0[0].in_channels == S + 3
    assert FPSEDiscriminator(S, ndf=4).enc1[0][0].parametrizations.weight.original.shape[1] == 3
    fp = FPSEDiscriminator(S, ndf=4, semantic_embedding=False)
    assert fp.semantic is None and fp.enc1[0][0].parametrizations.weight.original.shape[1] == S + 3


def test_split_picks_logits_and_official_weights():
    img, seg = inputs(64, 64)
    ms = MultiscalePatchDiscriminator(S, ndf=4, num_D=3)
    out = ms(img, seg)
    logits, feats, weights = ms.split(out)
    assert [id(t) for t in logits] == [id(scale[-1]) for scale in out]
    assert len(feats) == 12 and weights == [1 / 3] * 12 and all(t.shape[1] > 1 for t in feats)
    fpse = FPSEDiscriminator(S, ndf=4)
    out = fpse(img, seg)
    logits, feats, weights = fpse.split(out)
    assert logits == out[1] and feats == out[0] and weights == [0.25] * 4


@pytest.mark.parametrize("cls", [MultiscalePatchDiscriminator, FPSEDiscriminator])
def test_gradient_reaches_image_and_every_parameter(cls):
    D = cls(S, ndf=4)
    img, seg = inputs(64, 64, b=1)
    img.requires_grad_(True)
    logits = D.split(D(img, seg)).logits
    sum(x.mean() for x in logits).backward()
    assert img.grad is not None and img.grad.abs().sum() > 0
    assert all(p.grad is not None for p in D.parameters())


def test_paper_parameter_counts_equal_official():
    assert count_parameters(MultiscalePatchDiscriminator(184)) == 5_904_514  # COCO
    assert count_parameters(MultiscalePatchDiscriminator(151)) == 5_836_930  # ADE20K (5.837M)
    assert count_parameters(MultiscalePatchDiscriminator(36)) == 5_601_410  # Cityscapes (5.601M)
    assert count_parameters(FPSEDiscriminator(184)) == 5_194_817  # COCO
    assert round(count_parameters(FPSEDiscriminator(151)) / 1e6, 3) == 5.191
    assert round(count_parameters(FPSEDiscriminator(36)) / 1e6, 3) == 5.176


def test_wrong_label_channels_name_the_fix():
    D = MultiscalePatchDiscriminator(S, ndf=4)
    img, seg = inputs(32, 32, s=S + 1)
    with pytest.raises(ValueError, match=r"6 channels.*expects 5.*semantic_nc"):
        D(img, seg)
    with pytest.raises(ValueError, match="over 32 px"):
        FPSEDiscriminator(S, ndf=4)(*inputs(32, 32))
    with pytest.raises(ValueError, match="repeat seg"):
        FPSEDiscriminator(S, ndf=4)(torch.cat([img, img]), inputs(32, 32)[1])


def test_registered_and_configurable_by_gin():
    assert get("MultiscalePatchDiscriminator").kind == "discriminator"
    assert get("FPSEDiscriminator").kind == "discriminator"
    assert get("SemanticEmbedding").kind == "block"
    gin.parse_config(
        "MultiscalePatchDiscriminator.semantic_embedding = True\nMultiscalePatchDiscriminator.ndf = 4"
    )
    D = create("discriminator", "MultiscalePatchDiscriminator", semantic_nc=S)
    assert D.semantic_embedding and D.discriminator_0.semantic is not None
    assert D.discriminator_0.semantic.embed.out_channels == 8  # default embed_nc = 2 * ndf


def test_semantic_embedding_pooling_first_equals_official_order():
    se = SemanticEmbedding(S, 6, embed_nc=7)
    _, seg = inputs(64, 64)
    feat = torch.randn(2, 6, 16, 16)
    # official: embed the full map, then 2x2 average pools down to the feature size
    emb = se.embed(seg)
    for _ in range(2):
        emb = F.avg_pool2d(emb, 2)
    official = (emb * se.project(feat)).sum(1, keepdim=True)
    torch.testing.assert_close(se(feat, seg), official, atol=1e-6, rtol=1e-5)


def test_semantic_embedding_is_projection_score():
    se = SemanticEmbedding(3, 2, embed_nc=4)
    seg = torch.zeros(1, 3, 4, 4)
    seg[:, 1] = 1  # every pixel is class 1
    feat = torch.randn(1, 2, 4, 4)
    expected = torch.einsum("c,bchw->bhw", se.embed.weight[:, 1, 0, 0] + se.embed.bias, se.project(feat))
    torch.testing.assert_close(se(feat, seg)[:, 0], expected)
