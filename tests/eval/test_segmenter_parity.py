"""The paper segmenters compute what the original code computes (fixtures written by running it on CPU).

The weights are regenerated from each fixture's `spec` by tests/fixtures/segmenter_weights.py (checked bit
for bit by `weights_sha256`), saved as the released files would be and loaded strictly through condgen's
loader. Outputs (sampled: tests/fixtures/compact.py) must match to <= 1e-4 x std (the fixture README's
tolerance; thread noise is ~5e-6 x std), the UperNet softmax to 1e-6, the preprocessing to 1e-5.
"""

import pytest
import torch
import torch.nn.functional as F

from condgen.eval.segmenters import (
    PREPROCESS,
    load_segmenter_network,
    upernet_valdataset,
)
from condgen.networks.segmenters import StateDictMismatchError, count_parameters
from tests.eval.conftest import segmenter_fixture
from tests.fixtures.compact import max_error, shape_of, std_of

PARAMS = {
    "deeplabv2_cocostuff": (55_919_384,),
    "upernet101_ade20k": (42_623_936, 40_590_486),
    "drn_d105_cityscapes": (54_302_915,),
}
PREPROCESSING = {
    "deeplabv2_cocostuff": "deeplab_bgr",
    "upernet101_ade20k": "upernet_imagenet",
    "drn_d105_cityscapes": "drn_cityscapes",
}
pytestmark = pytest.mark.slow  # ~2-3 s per network (weights regenerated once per session)


def _close(out: torch.Tensor, ref, what: str) -> float:
    assert tuple(out.shape) == shape_of(ref), (what, tuple(out.shape), shape_of(ref))
    err = max_error(out, ref) / std_of(ref)
    print(f"{what}: max|diff| / std = {err:.2e}")
    assert err <= 1e-4, f"{what}: max|diff| = {err:.2e} x std > 1e-4"
    return err


def _net(name, paper_weights, **kw):
    paths = paper_weights["paths"][name]
    return load_segmenter_network(name, paths[0] if len(paths) == 1 else tuple(paths), **kw)


@pytest.mark.parametrize("name", list(PARAMS))
def test_weights_regenerate_bit_for_bit_and_params_count_exactly(name, paper_weights):
    for (n, part), (got, want) in paper_weights["digests"].items():
        if n == name:
            assert got == want, f"{name}{part}: regenerated weights differ (torch RNG changed?)"
    net = _net(name, paper_weights)
    counts = (
        (count_parameters(net.encoder), count_parameters(net.decoder))
        if name.startswith("uper")
        else (count_parameters(net),)
    )
    assert counts == PARAMS[name]
    assert not net.training


@pytest.mark.parametrize("name", list(PARAMS))
def test_preprocessing_matches_the_original_exactly(name):
    fx = segmenter_fixture(name)
    pre = PREPROCESS[PREPROCESSING[name]]
    assert (pre(fx["image_uint8"]) - fx["preprocessed"]).abs().max() <= 1e-5
    assert (pre(fx["input_uint8"]) - fx["input"]).abs().max() <= 1e-5
    assert (pre(fx["input_protocol_uint8"]) - fx["input_protocol"]).abs().max() <= 1e-5
    if name == "upernet101_ade20k":
        assert (
            PREPROCESS["upernet_bgr2019"](fx["image_uint8"]) - fx["preprocessed_bgr2019"]
        ).abs().max() <= 1e-5
        cfg = fx["valdataset_config"]
        got = upernet_valdataset(
            fx["image_uint8"], cfg["imgSizes"][0], cfg["imgMaxSize"], cfg["padding_constant"]
        )
        assert (got - fx["preprocessed_valdataset"]).abs().max() <= 1e-5


@torch.no_grad()
def test_deeplab_msc_matches(paper_weights):
    fx = segmenter_fixture("deeplabv2_cocostuff")
    net = _net("deeplabv2_cocostuff", paper_weights)
    _close(net(fx["input"]), fx["output"], "DeepLab MSC 97x129")
    _close(net.base(fx["input"]), fx["output_single_scale"], "DeepLab single scale 97x129")
    _close(net(fx["input_protocol"]), fx["output_protocol"], "DeepLab MSC 256x256")
    legacy = _net("deeplabv2_cocostuff", paper_weights, legacy_interp=True)
    _close(legacy(fx["input"]), fx["output_legacy_interp"], "DeepLab MSC legacy interpolation 97x129")


@torch.no_grad()
def test_upernet_matches(paper_weights):
    fx = segmenter_fixture("upernet101_ade20k")
    net = _net("upernet101_ade20k", paper_weights)
    _close(net(fx["input"]), fx["output_logits_quarter"], "UperNet logits 57x83")
    assert max_error(net.softmax_at(fx["input"], (57, 83)), fx["output"]) <= 1e-6
    logits = net(fx["input_protocol"])
    _close(logits, fx["output_protocol_logits_quarter"], "UperNet logits 256x256")
    up = F.interpolate(logits, (256, 256), mode="bilinear", align_corners=False)
    assert (up.argmax(1) == fx["output_protocol_argmax"].long()).float().mean() >= 0.9999


@torch.no_grad()
def test_drn_matches(paper_weights):
    fx = segmenter_fixture("drn_d105_cityscapes")
    net = _net("drn_d105_cityscapes", paper_weights)
    _close(net(fx["input"]), fx["output"], "DRN seg logits 97x129")
    _close(net.up_log_softmax(fx["input"]), fx["output_up_log_softmax"], "DRN up log-softmax 97x129")
    logits = net(fx["input_protocol"])
    _close(logits, fx["output_protocol"], "DRN seg logits 256x512")
    assert (net.up(logits).argmax(1) == fx["output_protocol_argmax"].long()).float().mean() >= 0.9999


def test_loading_is_strict_and_names_every_bad_key(paper_weights):
    sd = torch.load(paper_weights["paths"]["drn_d105_cityscapes"][0], weights_only=True)
    sd.pop("seg.bias")
    sd["extra.weight"] = torch.zeros(1)
    sd["base.0.0.weight"] = torch.zeros(16, 3, 5, 5)
    with pytest.raises(StateDictMismatchError) as err:
        load_segmenter_network("drn_d105_cityscapes", sd)
    msg = str(err.value)
    assert "1 missing: seg.bias" in msg and "1 unexpected: extra.weight" in msg
    assert "base.0.0.weight (16, 3, 5, 5) (network: (16, 3, 7, 7))" in msg


def test_upernet_syncbn_extras_are_dropped_and_num_batches_tracked_is_optional(paper_weights):
    fx = segmenter_fixture("upernet101_ade20k")
    enc, dec = (torch.load(p, weights_only=True) for p in paper_weights["paths"]["upernet101_ade20k"])
    assert set(fx["optional_keys_decoder"]) <= set(dec)
    lean = {k: v for k, v in dec.items() if k not in set(fx["optional_keys_decoder"])}  # a file without them
    net = load_segmenter_network("upernet101_ade20k", (enc, lean))
    assert torch.equal(net.decoder.conv_last[1].bias, dec["conv_last.1.bias"])
    with pytest.raises(ValueError, match="pair"):
        load_segmenter_network("upernet101_ade20k", enc)
