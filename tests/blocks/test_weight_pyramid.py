"""FeaturePyramidCondition: levels, sizes, channels, layer structure and the official parameter count."""

import pytest
import torch
import torch.nn.functional as F

from condgen.blocks.weight_pyramid import FeaturePyramidCondition
from condgen.utils import count_parameters


def _seg(b=2, nc=5, h=32, w=32):
    return F.one_hot(torch.randint(0, nc, (b, h, w)), nc).permute(0, 3, 1, 2).float()


@pytest.mark.parametrize(
    "num_levels, hw, sizes",
    [
        (6, (64, 64), [(2, 2), (4, 4), (8, 8), (16, 16), (32, 32), (64, 64)]),  # 'normal'
        (7, (64, 128), [(1, 2), (2, 4), (4, 8), (8, 16), (16, 32), (32, 64), (64, 128)]),  # 'more'
        (1, (8, 8), [(8, 8)]),
    ],
)
def test_levels_coarse_to_fine(num_levels, hw, sizes):
    pyr = FeaturePyramidCondition(5, num_levels=num_levels, ngf=3)
    seg = _seg(h=hw[0], w=hw[1])
    conds = pyr(seg)
    assert [tuple(c.shape[-2:]) for c in conds] == sizes
    assert all(c.shape[:2] == (2, 5 + 3) for c in conds) and pyr.cond_nc == 8
    for c in conds:  # the label map comes first, nearest-resized, exactly
        assert torch.equal(c[:, :5], F.interpolate(seg, size=c.shape[-2:], mode="nearest"))
    pyr.eval()  # in train mode every call advances spectral norm's power iteration
    conds, feats = pyr(seg), pyr.features(seg)
    assert all(torch.equal(c[:, 5:], f) for c, f in zip(conds, feats, strict=True))


def test_width_defaults_to_ngf_and_can_be_overridden():
    assert FeaturePyramidCondition(5, ngf=4).width == 4
    pyr = FeaturePyramidCondition(5, ngf=4, width=6)
    assert pyr.cond_nc == 11 and pyr.enc[0][0].out_channels == 6


def test_layers_follow_the_official_structure():
    pyr = FeaturePyramidCondition(7, num_levels=6, ngf=4)
    assert (len(pyr.enc), len(pyr.lat), len(pyr.dec)) == (6, 5, 5)
    assert [m[0].stride for m in pyr.enc] == [(1, 1)] + [(2, 2)] * 5
    assert {m[0].kernel_size for m in pyr.lat} == {(1, 1)} and {m[0].kernel_size for m in pyr.dec} == {(3, 3)}
    for layer in [*pyr.enc, *pyr.lat, *pyr.dec]:
        conv, bn, act = layer
        assert conv.bias is None and hasattr(conv, "parametrizations")  # spectral norm, no bias
        assert bn.affine and act.negative_slope == 0.2


def test_official_parameter_count_coco():
    # enc1 (64x184x3x3), 5 x enc (64x64x3x3), 5 x lat (1x1), 5 x dec (3x3), each + affine BN(64): 0.50 M
    expected = 64 * 184 * 9 + 5 * 64 * 64 * 9 + 5 * 64 * 64 + 5 * 64 * 64 * 9 + 16 * 128
    with torch.device("meta"):
        assert count_parameters(FeaturePyramidCondition(184, num_levels=6, ngf=64)) == expected == 497_152


def test_top_down_path_uses_the_coarser_level():
    """Changing only the coarsest encoder layer must change every finer decoder level."""
    pyr = FeaturePyramidCondition(5, num_levels=3, ngf=2).eval()
    seg = _seg(h=16, w=16)
    before = pyr.features(seg)
    with torch.no_grad():
        pyr.enc[2][1].bias.add_(1.0)
    after = pyr.features(seg)
    assert all(not torch.allclose(a, b) for a, b in zip(before, after, strict=True))


def test_wrong_channels_and_levels_fail_clearly():
    with pytest.raises(ValueError, match="built for 5 label channels got 4"):
        FeaturePyramidCondition(5)(torch.zeros(1, 4, 8, 8))
    with pytest.raises(ValueError, match="num_levels >= 1"):
        FeaturePyramidCondition(5, num_levels=0)
