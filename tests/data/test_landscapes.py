"""Synthetic landscapes: deterministic, every class used, style independent of layout, textures tied to
labels, any resolution, exported files read back identically, fast enough for the training loop."""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch

from condgen.data import (
    CustomFolder,
    SyntheticLandscapes,
    check_data,
    encode_labels,
    export_landscapes,
    landscape,
)
from condgen.data.landscapes import CLASSES, GRASS, SAND, WATER, Style, make_layout, sample_style


def test_deterministic_from_seed_and_index():
    a, b = landscape(0, 7, 48, 48), landscape(0, 7, 48, 48)
    assert np.array_equal(a["label"], b["label"]) and np.array_equal(a["image"], b["image"])
    assert a["style"] == b["style"]
    assert not np.array_equal(a["label"], landscape(0, 8, 48, 48)["label"])
    assert not np.array_equal(a["label"], landscape(1, 7, 48, 48)["label"])
    assert not np.array_equal(a["label"], landscape(0, 7, 48, 48, split="val")["label"])


def test_dataset_items_and_spec():
    ds = SyntheticLandscapes(length=5, crop_size=32, aspect_ratio=2.0, instance_edges=True)
    assert ds.spec.label_nc == len(CLASSES) == 9 and ds.spec.semantic_nc == 10
    item = ds[4]
    assert item["label"].shape == (1, 16, 32) and item["label"].dtype == torch.int64
    assert item["image"].shape == (3, 16, 32) and -1 <= item["image"].min() and item["image"].max() <= 1
    assert item["instance"].shape == (1, 16, 32)
    seg = encode_labels(item["label"][None], 9, instance=item["instance"][None])
    assert seg.shape == (1, ds.spec.semantic_nc, 16, 32)
    with pytest.raises(IndexError):
        ds[5]
    again = SyntheticLandscapes(length=5, crop_size=32, aspect_ratio=2.0)
    assert len(ds) == 5 and torch.equal(ds[2]["image"], again[2]["image"])


def test_every_class_appears_across_a_few_samples():
    seen = set()
    for i in range(12):
        seen |= set(np.unique(landscape(0, i, 32, 32)["label"]).tolist())
    assert seen == set(range(len(CLASSES)))


def test_style_varies_and_is_independent_of_the_layout():
    styles = [sample_style(np.random.default_rng(i)) for i in range(64)]
    assert np.std([s.daylight for s in styles]) > 0.15 and np.std([s.warmth for s in styles]) > 0.2
    # the same layout under another item's style: identical labels, different photo
    a, b = landscape(0, 3, 48, 48), landscape(0, 3, 48, 48, style=11)
    assert np.array_equal(a["label"], b["label"]) and a["style"] != b["style"]
    assert np.abs(a["image"].astype(int) - b["image"].astype(int)).mean() > 10
    # daylight drives brightness, whatever the layout
    night = landscape(0, 3, 48, 48, style=Style(0.02, 0.0, 0.2, 0.5, 1.0))["image"].mean()
    noon = landscape(0, 3, 48, 48, style=Style(1.0, 0.0, 0.2, 0.5, 1.0))["image"].mean()
    assert noon > 2 * night
    # across items the style is uncorrelated with what the layout contains
    ds = SyntheticLandscapes(length=120, crop_size=16)
    daylight = [ds.style(i)["daylight"] for i in range(120)]
    sky = [float((ds[i]["label"] == 0).float().mean()) for i in range(120)]
    assert abs(np.corrcoef(daylight, sky)[0, 1]) < 0.25


def test_labels_explain_most_of_the_photo():
    explained = []
    for i in range(8):
        s = landscape(0, i, 48, 48)
        label, img = s["label"], s["image"].astype(float)
        total = ((img - img.reshape(-1, 3).mean(0)) ** 2).sum()
        within = sum(((img[label == c] - img[label == c].mean(0)) ** 2).sum() for c in np.unique(label))
        explained.append(1 - within / total)
    assert np.mean(explained) > 0.6  # a generator that ignores the labels cannot match this


def _gradients(cls: int, n: int = 16) -> tuple[float, float]:
    """Mean |d/dx| and |d/dy| of brightness inside regions of `cls` (pixels whose 4 neighbours share it)."""
    gx, gy = [], []
    for i in range(n):
        s = landscape(0, i, 64, 64)
        lab, lum = s["label"].astype(int), s["image"].astype(float).mean(-1)
        c0 = lab[1:-1, 1:-1]
        inside = (
            (c0 == cls)
            & (lab[1:-1, 2:] == cls)
            & (lab[1:-1, :-2] == cls)
            & (lab[2:, 1:-1] == cls)
            & (lab[:-2, 1:-1] == cls)
        )
        gx.append(np.abs(lum[1:-1, 2:] - lum[1:-1, :-2])[inside])
        gy.append(np.abs(lum[2:, 1:-1] - lum[:-2, 1:-1])[inside])
    return float(np.concatenate(gx).mean()), float(np.concatenate(gy).mean())


def test_class_textures_have_their_own_orientation():
    wx, wy = _gradients(WATER)
    assert wy > 2.5 * wx  # horizontal ripples
    gx, gy = _gradients(GRASS)
    assert gx > 1.3 * gy  # vertical blades
    sx, sy = _gradients(SAND)
    assert sx > 1.3 * sy  # steep diagonal ripples


def test_layout_is_resolution_independent():
    small = make_layout(np.random.default_rng(5), 32, 32)[0]
    large = make_layout(np.random.default_rng(5), 128, 128)[0]
    assert (large[2::4, 2::4] == small).mean() > 0.9
    assert make_layout(np.random.default_rng(5), 24, 72)[0].shape == (24, 72)


def test_export_reads_back_exactly(tmp_path):
    root = export_landscapes(tmp_path / "synth", 3, size=(24, 32), seed=4, instances=True)
    assert (root / "classes.txt").read_text().split() == list(CLASSES)
    ds = CustomFolder(root, label_nc=9, crop_size=32, aspect_ratio=32 / 24, preprocess="none", flip=False)
    live = SyntheticLandscapes(length=3, seed=4, crop_size=32, aspect_ratio=32 / 24)
    assert len(ds) == 3 and ds.spec.instance_edges and ds.CLASS_NAMES == CLASSES
    for i in range(3):
        assert torch.equal(ds[i]["label"], live[i]["label"])
        assert torch.equal(ds[i]["image"], live[i]["image"])
    assert check_data(ds).ok


def test_flip_follows_the_torch_rng():
    ds = SyntheticLandscapes(length=2, crop_size=16, flip=True)
    torch.manual_seed(0)
    a = [ds[0]["label"] for _ in range(8)]
    torch.manual_seed(0)
    b = [ds[0]["label"] for _ in range(8)]
    assert all(torch.equal(x, y) for x, y in zip(a, b, strict=True))
    plain = SyntheticLandscapes(length=2, crop_size=16)[0]["label"]
    assert any(torch.equal(x, plain.flip(-1)) for x in a) and any(torch.equal(x, plain) for x in a)


def test_check_data_histogram():
    report = check_data(SyntheticLandscapes(length=6, crop_size=16))
    assert report.ok and sum(report.histogram) == 6 * 16 * 16
    assert "sky" in report.format() and "water" in SyntheticLandscapes.CLASS_NAMES


def test_fast_enough_for_the_training_loop():
    ds = SyntheticLandscapes(length=100, crop_size=64)
    ds[0]
    start = time.perf_counter()
    for i in range(40):
        ds[i]
    per_item = (time.perf_counter() - start) / 40
    assert per_item < 0.1, f"{per_item * 1000:.1f} ms per 64x64 item"  # ~10 ms idle; generous under load
