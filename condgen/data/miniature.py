"""`make_miniature`: a few synthetic landscapes written in an official dataset layout, for docs and tests.

Each layout gets its own file names, formats and id conventions (COCO-Stuff 8-bit ids with 255 unlabelled
edges and 8-bit instance maps; ADEChallengeData2016 JPEG photos with ids 0..150; Cityscapes labelIds with
16-bit instanceIds at aspect 2; the custom folders), so the real loaders run on it unchanged. Landscape
classes map to related ids of each dataset; the semantics are approximate, the formats exact.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from condgen.data.classes import ADE20K, CITYSCAPES, COCO_STUFF
from condgen.data.landscapes import CLASSES, export_landscapes, landscape

LAYOUTS = ("coco", "ade20k", "cityscapes", "custom")
_TO = {  # landscape class -> name of the dataset's class
    "coco": ("sky-other", "clouds", "mountain", "snow", "rock", "tree", "grass", "sand", "sea"),
    "ade20k": ("sky", "sky", "mountain", "earth", "rock", "tree", "grass", "sand", "water"),
    "cityscapes": ("sky", "sky", "building", "sidewalk", "static", "vegetation", "terrain", "ground", "road"),
}
_NAMES = {"coco": COCO_STUFF, "ade20k": ADE20K, "cityscapes": CITYSCAPES}


def _lut(layout: str) -> np.ndarray:
    return np.array([_NAMES[layout].index(n) for n in _TO[layout]], np.uint8)


def _edges(label: np.ndarray) -> np.ndarray:
    e = np.zeros(label.shape, bool)
    e[:, 1:] |= label[:, 1:] != label[:, :-1]
    e[1:, :] |= label[1:, :] != label[:-1, :]
    return e


def make_miniature(layout: str, root: str | Path, n: int = 4, size: int = 64, seed: int = 0) -> Path:
    """Write `n` train and `n` val items in `layout` under `root`; returns the path to pass as `root=`.

    Args:
        layout: 'coco' | 'ade20k' | 'cityscapes' | 'custom'.
        size: image width; height is `size` (Cityscapes: `size // 2`).
    """
    if layout not in LAYOUTS:
        raise ValueError(f"layout={layout!r}; choose one of {', '.join(LAYOUTS)}")
    root = Path(root)
    if layout == "custom":
        for split in ("train", "val"):
            export_landscapes(root, n, size, seed, split=split, instances=True, subfolder=True)
        return root
    if layout == "ade20k":
        root = root / "ADEChallengeData2016"
    h = size // 2 if layout == "cityscapes" else size
    lut = _lut(layout)
    for split in ("train", "val"):
        for i in range(n):
            scene = landscape(seed, i, h, size, split=split)
            label, photo = lut[scene["label"]], Image.fromarray(scene["image"])
            if layout == "coco":  # COCO-Stuff leaves thin unlabelled (255) seams between regions
                label = np.where(_edges(label) & (np.arange(size) % 3 == 0), 255, label).astype(np.uint8)
                name = f"{i + 1:012d}"
                _save(root / f"{split}_img" / f"{name}.jpg", photo)
                _save(root / f"{split}_label" / f"{name}.png", Image.fromarray(label))
                _save(
                    root / f"{split}_inst" / f"{name}.png",
                    Image.fromarray(scene["instance"].astype(np.uint8)),
                )
            elif layout == "ade20k":
                label = np.where(_edges(label) & (np.arange(size) % 4 == 0), 0, label).astype(np.uint8)
                folder = {"train": "training", "val": "validation"}[split]
                name = f"ADE_{split}_{i + 1:08d}"
                _save(root / "images" / folder / f"{name}.jpg", photo)
                _save(root / "annotations" / folder / f"{name}.png", Image.fromarray(label))
            else:
                city = {"train": "aachen", "val": "frankfurt"}[split]
                name = f"{city}_{i:06d}_000019"
                # 16-bit instanceIds: stuff keeps its labelId, objects get labelId * 1000 + k (as Cityscapes)
                objects = scene["instance"] >= len(CLASSES)
                inst = np.where(objects, label.astype(np.int32) * 1000 + scene["instance"], label)
                _save(root / "leftImg8bit" / split / city / f"{name}_leftImg8bit.png", photo)
                _save(root / "gtFine" / split / city / f"{name}_gtFine_labelIds.png", Image.fromarray(label))
                _save(
                    root / "gtFine" / split / city / f"{name}_gtFine_instanceIds.png",
                    Image.fromarray(inst.astype(np.uint16)),
                )
    return root


def _save(path: Path, img: Image.Image) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path, quality=95) if path.suffix == ".jpg" else img.save(path)
