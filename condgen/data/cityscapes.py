"""Cityscapes `gtFine` in the official layout (SPADE `data/cityscapes_dataset.py`): raw labelIds, label_nc 35.

Labels are `*_gtFine_labelIds.png` (the 34-id scheme 0..33, not the 19 trainIds; channel 34 stays empty), with
no don't-care channel, so a 255 is an error (the official code crashes on it). Instance maps are the 16-bit
`*_gtFine_instanceIds.png`; only their edges are used. Files pair by `<city>_<seq>_<frame>`. Default
preprocessing is 'fixed' to 512x256 (aspect 2).
"""

from __future__ import annotations

from pathlib import Path

from condgen.data.classes import CITYSCAPES
from condgen.data.folder import FolderDataset, Sample
from condgen.data.io import IMAGE_EXTENSIONS, list_files
from condgen.registry import register


def _frame(path: Path) -> str:
    return "_".join(path.name.split("_")[:3])


@register("dataset")
class Cityscapes(FolderDataset):
    """Cityscapes (SPADE Sec. 4): 2,975 train / 500 val street scenes, 36 generator channels by default.

    Args:
        root: folder holding `gtFine/` and `leftImg8bit/`.
        (the other arguments: see `FolderDataset`; defaults are the official Cityscapes options)
    """

    LAYOUT = (
        "  gtFine/{split}/<city>/<city>_<seq>_<frame>_gtFine_labelIds.png     8-bit labelIds 0..33\n"
        "  gtFine/{split}/<city>/<city>_<seq>_<frame>_gtFine_instanceIds.png  16-bit instance ids\n"
        "  leftImg8bit/{split}/<city>/<city>_<seq>_<frame>_leftImg8bit.png   photos\n"
        "as unpacked from the official gtFine_trainvaltest.zip and leftImg8bit_trainvaltest.zip"
    )
    CLASS_NAMES = CITYSCAPES

    def __init__(
        self,
        root: str | Path,
        *,
        split: str = "train",
        label_nc: int = 35,
        contain_dontcare_label: bool = False,
        instance_edges: bool = True,
        crop_size: int = 512,
        load_size: int | None = None,
        preprocess: str = "fixed",
        flip: bool | None = None,
        aspect_ratio: float = 2.0,
    ) -> None:
        super().__init__(
            root,
            split=split,
            label_nc=label_nc,
            contain_dontcare_label=contain_dontcare_label,
            instance_edges=instance_edges,
            crop_size=crop_size,
            load_size=load_size,
            preprocess=preprocess,
            flip=flip,
            aspect_ratio=aspect_ratio,
        )

    def find_samples(self) -> list[Sample]:
        label_dir = self.require_dir(self.root / "gtFine" / self.split, "gtFine label")
        image_dir = self.require_dir(self.root / "leftImg8bit" / self.split, "leftImg8bit photo")
        gt = list_files(label_dir, IMAGE_EXTENSIONS, recursive=True)
        labels = [p for p in gt if p.name.endswith("_labelIds.png")]
        if not labels and any(p.name.endswith("_color.png") for p in gt):
            raise self.layout_error(
                label_dir,
                "only *_gtFine_color.png found: those are colour visualisations; "
                "SPADE uses *_gtFine_labelIds.png from gtFine_trainvaltest.zip",
            )
        instances = [p for p in gt if p.name.endswith("_instanceIds.png")] if self.instance_edges else None
        images = [
            p for p in list_files(image_dir, IMAGE_EXTENSIONS, recursive=True) if "_leftImg8bit" in p.name
        ]
        return self.pair(labels, images, instances, key=_frame)
