"""ADE20K, SceneParsing release `ADEChallengeData2016` (SPADE `data/ade20k_dataset.py`), + an outdoor subset.

Ids are fed raw, 0 ('other') .. 150, as one-hot channels 0..150 = label_nc 150 + the don't-care channel: the
official `postprocess()` meant to shift them by -1 but never writes its result back, and the released models
were trained that way (reference notes Sec. 1.11). No instance maps.

ADE20K-outdoor (SPADE Table 1, after SIMS, Qi et al. 2018) has no published file list (OASIS #23: SIMS
released only its 1,035 outdoor test labels; OASIS rebuilt the split by keeping images with classes such as
sky, mountain and earth, dropping those with ceiling, bed, sink, then skimming by hand). `outdoor=True`
applies that class rule with the lists below (ours); `outdoor='<file>'` keeps the image names listed in a
file instead, for an exact published split.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from condgen.data.classes import ADE20K as ADE20K_NAMES
from condgen.data.folder import FolderDataset, Sample
from condgen.data.io import IMAGE_EXTENSIONS, list_files, read_label
from condgen.registry import register

_FOLDERS = {"train": "training", "val": "validation"}
_TAGS = {"train": "_train_", "val": "_val_"}

# ADE ids (classes.ADE20K) for the outdoor rule: keep an image with any OUTDOOR id and no INDOOR id.
OUTDOOR_IDS = frozenset(ADE20K_NAMES.index(n) for n in ("sky", "mountain", "earth", "hill", "sea", "field"))
INDOOR_NAMES = (
    "ceiling", "bed", "sink", "bathtub", "toilet", "fireplace", "refrigerator", "stove", "chandelier",
    "shower", "pool table", "kitchen island", "countertop", "escalator",
)  # fmt: skip
INDOOR_IDS = frozenset(ADE20K_NAMES.index(n) for n in INDOOR_NAMES)


@register("dataset")
class ADE20K(FolderDataset):
    """ADE20K SceneParsing (SPADE Sec. 4): 20,210 train / 2,000 val, 151 generator channels by default.

    Args:
        root: the `ADEChallengeData2016` folder (or its parent).
        outdoor: False (all images), True (the class rule above) or a text file of image names to keep.
        (the other arguments: see `FolderDataset`; defaults are the official ADE20K options)
    """

    LAYOUT = (
        "  images/training/ADE_train_*.jpg        images/validation/ADE_val_*.jpg\n"
        "  annotations/training/ADE_train_*.png   annotations/validation/ADE_val_*.png  (8-bit ids 0..150)\n"
        "i.e. the SceneParsing release ADEChallengeData2016.zip, not the full ADE20K_2016_07_26 (SPADE #11)"
    )
    CLASS_NAMES = ADE20K_NAMES

    def __init__(
        self,
        root: str | Path,
        *,
        split: str = "train",
        outdoor: bool | str = False,
        label_nc: int = 150,
        contain_dontcare_label: bool = True,
        crop_size: int = 256,
        load_size: int | None = None,
        preprocess: str = "resize_and_crop",
        flip: bool | None = None,
        aspect_ratio: float = 1.0,
    ) -> None:
        self.outdoor = outdoor
        root = Path(root).expanduser()
        if (root / "ADEChallengeData2016").is_dir():
            root = root / "ADEChallengeData2016"
        super().__init__(
            root,
            split=split,
            label_nc=label_nc,
            contain_dontcare_label=contain_dontcare_label,
            instance_edges=False,
            crop_size=crop_size,
            load_size=load_size,
            preprocess=preprocess,
            flip=flip,
            aspect_ratio=aspect_ratio,
        )

    def find_samples(self) -> list[Sample]:
        if (self.root / "index_ade20k.pkl").exists() or (self.root / "images" / "ADE").is_dir():
            raise self.layout_error(
                self.root,
                "this is the full ADE20K release, which uses other ids and folders; "
                "download ADEChallengeData2016.zip (sceneparsing.csail.mit.edu)",
            )
        folder, tag = _FOLDERS[self.split], _TAGS[self.split]
        image_dir = self.require_dir(self.root / "images" / folder, "photo")
        label_dir = self.require_dir(self.root / "annotations" / folder, "annotation")
        labels = [p for p in list_files(label_dir, IMAGE_EXTENSIONS) if tag in p.name]
        images = [p for p in list_files(image_dir, IMAGE_EXTENSIONS) if tag in p.name]
        samples = self.pair(labels, images)
        if self.outdoor is True:
            samples = [s for s in samples if is_outdoor(s.label)]
        elif self.outdoor:
            listed = Path(self.outdoor).expanduser()
            if not listed.is_file():
                raise self.layout_error(listed, "outdoor list file not found (one image name per line)")
            keep = {Path(line.strip()).stem for line in listed.read_text().splitlines() if line.strip()}
            samples = [s for s in samples if s.label.stem in keep]
        return samples


def is_outdoor(label_path: str | Path) -> bool:
    """The outdoor class rule: some OUTDOOR_IDS class present and no INDOOR_IDS class."""
    present = set(np.unique(np.asarray(read_label(label_path))).tolist())
    return bool(present & OUTDOOR_IDS) and not present & INDOOR_IDS


def write_outdoor_list(root: str | Path, split: str, path: str | Path) -> int:
    """Apply the outdoor rule once and save the kept names (pass the file as `outdoor=` to skip the scan)."""
    ds = ADE20K(root, split=split, outdoor=True)
    Path(path).write_text("".join(s.label.stem + "\n" for s in ds.samples))
    return len(ds)
