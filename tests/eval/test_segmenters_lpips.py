"""The segmenter registry, the landscape segmenter's recipe and cache, and LPIPS diversity."""

import dataclasses

import pytest
import torch

from condgen.eval import diversity
from condgen.eval.landscape_segmenter import LandscapeRecipe, LandscapeSegmenter, landscape_segmenter
from condgen.eval.segmenters import (
    CITYSCAPES_TRAIN_IDS,
    SEGMENTERS,
    get_segmenter,
    load_segmenter,
    register_segmenter,
    segmenter_for,
)
from condgen.weights import WeightsNotFoundError, sha256_file

TINY = LandscapeRecipe(train_images=16, steps=3, batch_size=8, width=4, val_images=4)


@pytest.fixture(autouse=True)
def _empty_torch_home(monkeypatch, tmp_path):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))


def test_registry_lookup_and_defaults():
    assert {"landscape", "deeplabv2_cocostuff", "upernet101_ade20k", "drn_d105_cityscapes"} <= set(SEGMENTERS)
    assert (
        segmenter_for("CocoStuff") == "deeplabv2_cocostuff"
        and segmenter_for("Cityscapes") == "drn_d105_cityscapes"
    )
    with pytest.raises(KeyError, match="did you mean 'landscape'|Did you mean 'landscape'"):
        get_segmenter("landscap")
    with pytest.raises(KeyError, match="register one"):
        segmenter_for("MyData")


@pytest.mark.parametrize("name", ["deeplabv2_cocostuff", "upernet101_ade20k", "drn_d105_cityscapes"])
def test_paper_segmenters_say_what_to_fetch_and_where(name, tmp_path):
    with pytest.raises(WeightsNotFoundError) as err:
        load_segmenter(name)
    first = get_segmenter(name).weights[0]
    assert first.filenames[0] in str(err.value) and "put it at" in str(err.value)
    files = []
    for w in get_segmenter(name).weights:  # present but not a state dict: the file is named
        files.append(tmp_path / w.filenames[0])
        files[-1].write_bytes(b"weights")
    with pytest.raises(ValueError, match="cannot read .* as a PyTorch state dict"):
        load_segmenter(name, weights=tuple(files))


def test_label_remaps():
    coco = get_segmenter("deeplabv2_cocostuff").label_remap
    assert coco(torch.tensor([0, 181, 182])).tolist() == [0, 181, 255]
    ade = get_segmenter("upernet101_ade20k").label_remap
    assert ade(torch.tensor([0, 1, 150])).tolist() == [255, 0, 149]
    city = get_segmenter("drn_d105_cityscapes").label_remap
    assert city(torch.tensor([7, 8, 26, 33, 0, 34])).tolist() == [0, 1, 13, 18, 255, 255]
    assert len(CITYSCAPES_TRAIN_IDS) == 35 and sorted(set(CITYSCAPES_TRAIN_IDS) - {255}) == list(range(19))


def test_plugged_in_builder_and_resizing():
    class Const(torch.nn.Module):
        def forward(self, img):
            assert img.shape[-2:] == (16, 16)  # resized to the entry's input size
            return torch.zeros(img.shape[0], 3, 16, 16).index_fill_(1, torch.tensor([2]), 1.0)

    register_segmenter(
        dataclasses.replace(
            get_segmenter("landscape"),
            name="const",
            num_classes=3,
            input_size=(16, 16),
            builder=lambda spec, paths: (Const(), {}),
        )
    )
    try:
        seg = load_segmenter("const")
        out = seg(torch.zeros(2, 3, 40, 24))
        assert out.shape == (2, 3, 40, 24) and (seg.predict(torch.zeros(1, 3, 8, 8)) == 2).all()
    finally:
        SEGMENTERS.pop("const")


def test_landscape_segmenter_is_deterministic_and_cached(tmp_path, monkeypatch):
    import condgen.eval.landscape_segmenter as ls

    net, meta = landscape_segmenter(TINY, cache=tmp_path)
    again_trained, _ = ls.train_landscape_segmenter(TINY)
    for k, v in net.state_dict().items():
        assert torch.equal(v, again_trained.state_dict()[k]), k
    assert meta["weights_sha256"] == sha256_file(meta["weights_path"]) and 0 <= meta["val_miou"] <= 1
    monkeypatch.setattr(ls, "train_landscape_segmenter", lambda r: pytest.fail("retrained despite the cache"))
    cached, meta2 = landscape_segmenter(TINY, cache=tmp_path)
    assert meta2["weights_sha256"] == meta["weights_sha256"]
    assert all(torch.equal(v, cached.state_dict()[k]) for k, v in net.state_dict().items())


def test_landscape_segmenter_shapes_and_features():
    net = LandscapeSegmenter(width=4).eval()
    x = torch.rand(2, 3, 64, 64) * 2 - 1
    assert net(x).shape == (2, 9, 64, 64) and net.features(x).shape == (2, net.feature_dim)


def test_lpips_diversity_with_a_random_backbone():
    lp = diversity.LPIPS(random_weights=True)
    same = torch.rand(1, 3, 32, 32).repeat(3, 1, 1, 1) * 2 - 1
    assert diversity.mean_pairwise(lp, same) == (pytest.approx(0.0, abs=1e-6), 3)
    mean, pairs = diversity.mean_pairwise(lp, torch.rand(4, 3, 32, 32) * 2 - 1)
    assert pairs == 6 and mean > 0
    with pytest.raises(ValueError, match="at least 2"):
        diversity.mean_pairwise(lp, same[:1])


def test_lpips_backbone_loads_offline_and_is_checked(tmp_path, monkeypatch):
    with pytest.raises(WeightsNotFoundError, match="alexnet-owt-7be5be79.pth"):
        diversity.LPIPS()
    from torchvision.models import alexnet

    f = tmp_path / "alexnet-owt-7be5be79.pth"
    sd = alexnet(weights=None).state_dict()
    torch.save(sd, f)
    monkeypatch.setattr(
        diversity, "ALEXNET", dataclasses.replace(diversity.ALEXNET, sha256=sha256_file(f)[:8])
    )
    lp = diversity.LPIPS(weights=f)
    assert torch.equal(lp.net.net.slice5._modules["10"].weight, sd["features.10.weight"])
    assert lp.record["backbone_sha256"] == sha256_file(f)


def test_segmenter_feature_distance_is_zero_for_identical_samples_and_positive_otherwise(tiny_segmenter):
    dist = diversity.SegmenterFeatureDistance(tiny_segmenter)
    same = torch.rand(1, 3, 32, 32).repeat(3, 1, 1, 1) * 2 - 1
    assert diversity.mean_pairwise(dist, same) == (pytest.approx(0.0, abs=1e-6), 3)
    different = torch.rand(4, 3, 32, 32) * 2 - 1
    mean, pairs = diversity.mean_pairwise(dist, different)
    assert pairs == 6 and 0 < mean <= 4
    a, b = different[:2], different[2:]
    torch.testing.assert_close(dist(a, b), dist(b, a))  # symmetric
    # the recipe by hand: unit-normalised channels, squared difference summed over channels, spatial mean
    fa, fb = tiny_segmenter.feature_maps(a), tiny_segmenter.feature_maps(b)
    assert len(fa) == 3
    by_hand = sum(
        (diversity.unit_normalize(x) - diversity.unit_normalize(y)).pow(2).sum(1).mean((1, 2))
        for x, y in zip(fa, fb, strict=True)
    ) / len(fa)
    torch.testing.assert_close(dist(a, b), by_hand)
    rec = dist.record
    assert rec["name"] == "seg-feature-distance:landscape" and "NOT LPIPS" in rec["what"]
    assert rec["weights_sha256"] == tiny_segmenter.record["weights_sha256"]


def test_segmenter_without_feature_maps_is_refused():
    class Logits(torch.nn.Module):
        def forward(self, img):
            return torch.zeros(img.shape[0], 3, *img.shape[-2:])

    register_segmenter(
        dataclasses.replace(
            get_segmenter("landscape"),
            name="nomaps",
            num_classes=3,
            input_size=None,
            builder=lambda spec, paths: (Logits(), {}),
        )
    )
    try:
        with pytest.raises(TypeError, match="no feature maps"):
            diversity.SegmenterFeatureDistance(load_segmenter("nomaps"))
    finally:
        SEGMENTERS.pop("nomaps")


def test_the_network_builder_is_a_field_of_the_entry(monkeypatch):
    """`load_segmenter_network` builds what the entry's `network` says (no per-name branch to extend)."""
    import dataclasses

    from torch import nn

    from condgen.eval import segmenters

    files = dict(deeplabv2_cocostuff="coco", upernet101_ade20k="ade20k", drn_d105_cityscapes="cityscapes")
    assert segmenters.PAPER_NETWORKS == tuple(files)
    for name, file in files.items():  # each dataset's file states its own builder
        assert SEGMENTERS[name].network.__module__ == f"condgen.eval.segmenters.{file}"
    seen = []

    def network(weights, *, legacy_interp=False):
        seen.append((weights, legacy_interp))
        return nn.Conv2d(3, 2, 1).train()

    spec = dataclasses.replace(SEGMENTERS["landscape"], name="custom_net", network=network)
    monkeypatch.setitem(SEGMENTERS, "custom_net", spec)
    net = segmenters.load_segmenter_network("custom_net:someprotocol", "w.pth", legacy_interp=True)
    assert seen == [("w.pth", True)] and not net.training
    assert not any(p.requires_grad for p in net.parameters())
    with pytest.raises(KeyError, match="no paper segmenter network 'landscape'; choose one of deeplab"):
        segmenters.load_segmenter_network("landscape", "w.pth")
