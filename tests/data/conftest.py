"""Tiny hand-made datasets in each official layout, with known pixel values."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image


def save_ids(path: Path, ids: np.ndarray, dtype=np.uint8) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.asarray(ids).astype(dtype)).save(path)
    return path


def save_photo(path: Path, rgb: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.asarray(rgb).astype(np.uint8)).save(path, quality=100)
    return path


def stripes(h: int, w: int, ids: list[int]) -> np.ndarray:
    """Vertical stripes of the given ids, left to right (asymmetric, so flips are visible)."""
    cols = np.array_split(np.arange(w), len(ids))
    out = np.zeros((h, w), np.int64)
    for i, c in zip(ids, cols, strict=True):
        out[:, c] = i
    return out


def photo_of(ids: np.ndarray) -> np.ndarray:
    """A lossless photo whose red channel encodes the id: pairs stay checkable after crop and flip."""
    r = (np.asarray(ids) * 7) % 256
    g = np.broadcast_to(np.arange(ids.shape[1]) % 256, ids.shape)
    return np.stack([r, g, np.full_like(r, 128)], -1)


@pytest.fixture
def coco_root(tmp_path: Path) -> Path:
    """3 train + 2 val COCO-Stuff triples (40x48), ids incl. 0, 181 and 255; instance ids split class 5."""
    root = tmp_path / "coco"
    for split, n in (("train", 3), ("val", 2)):
        for i in range(n):
            ids = stripes(40, 48, [0, 5, 181, 255])
            inst = ids.copy()
            inst[:20][ids[:20] == 5] = 77  # two instances of class 5: an edge that the label map lacks
            name = f"{i:012d}"
            save_ids(root / f"{split}_label" / f"{name}.png", ids)
            save_ids(root / f"{split}_inst" / f"{name}.png", inst)
            save_photo(root / f"{split}_img" / f"{name}.png", photo_of(ids))
    return root


@pytest.fixture
def ade_root(tmp_path: Path) -> Path:
    """ADEChallengeData2016 with 2 train images (one outdoor: sky, one indoor: ceiling) and 1 val image."""
    root = tmp_path / "ADEChallengeData2016"
    specs = {
        "training": [("train", 1, [3, 0, 150, 14]), ("train", 2, [6, 1, 4, 3])],
        "validation": [("val", 1, [3, 17])],
    }
    for folder, items in specs.items():
        for split, i, ids in items:
            name = f"ADE_{split}_{i:08d}"
            lab = stripes(32, 32, ids)
            save_ids(root / "annotations" / folder / f"{name}.png", lab)
            save_photo(root / "images" / folder / f"{name}.png", photo_of(lab))
    return root


@pytest.fixture
def cityscapes_root(tmp_path: Path) -> Path:
    """Cityscapes gtFine/leftImg8bit, 2 train frames in 2 cities + 1 val, 64x32, 16-bit instanceIds."""
    root = tmp_path / "cityscapes"
    frames = [("train", "aachen", 0), ("train", "bochum", 1), ("val", "lindau", 0)]
    for split, city, i in frames:
        stem = f"{city}_{i:06d}_000019"
        lab = stripes(32, 64, [7, 26, 26, 33])
        inst = lab.copy()
        inst[:, 16:32] = 26000
        inst[:, 32:48] = 26001  # two cars side by side: same labelId, different instances
        save_ids(root / "gtFine" / split / city / f"{stem}_gtFine_labelIds.png", lab)
        save_ids(root / "gtFine" / split / city / f"{stem}_gtFine_instanceIds.png", inst, np.uint16)
        save_ids(root / "gtFine" / split / city / f"{stem}_gtFine_color.png", np.zeros((32, 64)))
        save_photo(root / "leftImg8bit" / split / city / f"{stem}_leftImg8bit.png", photo_of(lab))
    return root


@pytest.fixture
def custom_root(tmp_path: Path) -> Path:
    """Flat custom folders, 3 pairs of 24x32, ids 0..3, no instances."""
    root = tmp_path / "custom"
    for i in range(3):
        lab = stripes(24, 32, [0, 1, 2, 3])
        save_ids(root / "labels" / f"img{i}.png", lab)
        save_photo(root / "images" / f"img{i}.jpg", photo_of(lab))
    return root
