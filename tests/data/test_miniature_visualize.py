"""Miniatures of each official layout load with the real loaders; label maps colourise."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from condgen.data import (
    ADE20K,
    Cityscapes,
    CocoStuff,
    CustomFolder,
    SyntheticLandscapes,
    check_data,
    colorize,
    default_palette,
    make_miniature,
)

LOADERS = {
    "coco": (CocoStuff, {}, 184),
    "ade20k": (ADE20K, {}, 151),
    "cityscapes": (Cityscapes, {}, 36),
    "custom": (CustomFolder, {"label_nc": 9}, 10),
}


@pytest.mark.parametrize("layout", list(LOADERS))
def test_miniature_loads_with_the_official_loader(tmp_path, layout):
    cls, kwargs, semantic_nc = LOADERS[layout]
    root = make_miniature(layout, tmp_path / layout, n=2, size=32)
    for split in ("train", "val"):
        ds = cls(root, split=split, crop_size=32, **kwargs)
        assert len(ds) == 2 and ds.spec.semantic_nc == semantic_nc
        report = check_data(ds)
        assert report.ok, report.format()
        item = ds[1]
        assert item["label"].shape[-2:] == item["image"].shape[-2:] == ds.spec.size
    assert sum(report.histogram) == 2 * 32 * (16 if layout == "cityscapes" else 32)


def test_miniature_file_conventions(tmp_path):
    coco = make_miniature("coco", tmp_path / "c", n=1, size=32)
    assert Image.open(next((coco / "train_img").iterdir())).format == "JPEG"
    label = np.asarray(Image.open(next((coco / "train_label").iterdir())))
    assert 255 in label and label[label != 255].max() < 182
    city = make_miniature("cityscapes", tmp_path / "s", n=1, size=32)
    inst = Image.open(next((city / "gtFine" / "train").rglob("*_instanceIds.png")))
    assert inst.mode.startswith("I") and np.asarray(inst).max() > 255  # 16-bit, like the real files
    with pytest.raises(ValueError, match="layout='voc'"):
        make_miniature("voc", tmp_path)


def test_colorize():
    label = torch.tensor([[0, 1], [2, 300]])
    rgb = colorize(label, [(0, 0, 0), (255, 0, 0), (0, 255, 0)])
    assert rgb.shape == (3, 2, 2) and rgb.min() >= -1 and rgb.max() <= 1
    assert rgb[:, 0, 1].tolist() == [1.0, -1.0, -1.0] and rgb[:, 1, 1].tolist() == [-1.0, -1.0, -1.0]
    batch = SyntheticLandscapes(length=2, crop_size=16)[0]["label"][None].repeat(2, 1, 1, 1)
    out = colorize(batch, SyntheticLandscapes.PALETTE)
    assert out.shape == (2, 3, 16, 16)


def test_default_palette_is_distinct():
    pal = default_palette(256)
    assert len(set(pal)) == 256 and pal[0] == (0, 0, 0) and pal[1] == (128, 0, 0)
