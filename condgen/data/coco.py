"""COCO-Stuff in the official SPADE layout (`data/coco_dataset.py`): label_nc 182, 255 = don't care.

Labels are the 8-bit stuffthingmaps (ids 0..181, 255 unlabelled -> 182, the don't-care channel); instance
maps come from the official `coco_generate_instance_map.py`. Pairing is by file name (official:
natural-sorted lists plus a name check). Not reproduced: the `files.list` cache, which the official code
reads but never writes.
"""

from __future__ import annotations

from pathlib import Path

from condgen.data.classes import COCO_STUFF
from condgen.data.folder import FolderDataset, Sample
from condgen.data.io import IMAGE_EXTENSIONS, LABEL_EXTENSIONS, list_files
from condgen.registry import register


@register("dataset")
class CocoStuff(FolderDataset):
    """COCO-Stuff 2017 (SPADE Sec. 4): 118k train / 5k val, 184 generator channels by default.

    Args:
        root: folder holding `{train,val}_{label,img,inst}/`.
        portraits: in training, also read `train_{label,img,inst}_portrait/` when present (official default).
        (the other arguments: see `FolderDataset`; defaults are the official COCO options)
    """

    LAYOUT = (
        "  {split}_label/*.png   8-bit class ids 0..181, 255 = unlabelled (COCO-Stuff stuffthingmaps)\n"
        "  {split}_img/*.jpg     photos, same file names\n"
        "  {split}_inst/*.png    instance maps (official coco_generate_instance_map.py), for instance_edges\n"
        "  train_*_portrait/     optional extra training triples (train_label_portrait/, ...)"
    )
    CLASS_NAMES = COCO_STUFF

    def __init__(
        self,
        root: str | Path,
        *,
        split: str = "train",
        label_nc: int = 182,
        contain_dontcare_label: bool = True,
        instance_edges: bool = True,
        portraits: bool = True,
        crop_size: int = 256,
        load_size: int | None = None,
        preprocess: str = "resize_and_crop",
        flip: bool | None = None,
        aspect_ratio: float = 1.0,
    ) -> None:
        self.portraits = portraits
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
        suffixes = [""]
        if self.train and self.portraits and (self.root / f"{self.split}_label_portrait").is_dir():
            suffixes.append("_portrait")
        samples: list[Sample] = []
        for suffix in suffixes:
            label_dir = self.require_dir(self.root / f"{self.split}_label{suffix}", "label")
            image_dir = self.require_dir(self.root / f"{self.split}_img{suffix}", "photo")
            inst = None
            if self.instance_edges:
                inst_dir = self.root / f"{self.split}_inst{suffix}"
                if not inst_dir.is_dir():
                    raise self.layout_error(
                        inst_dir,
                        "instance-map folder not found; generate it with the official "
                        "coco_generate_instance_map.py, or set CocoStuff.instance_edges = False "
                        "(official COCO checkpoints expect the edge channel: 184 inputs)",
                    )
                inst = list_files(inst_dir, LABEL_EXTENSIONS)
            labels = list_files(label_dir, IMAGE_EXTENSIONS)
            samples += self.pair(labels, list_files(image_dir, IMAGE_EXTENSIONS), inst)
        return samples
