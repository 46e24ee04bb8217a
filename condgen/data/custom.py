"""Your own data, Flickr-landscapes style (SPADE `data/custom_dataset.py`): `images/`, `labels/`, `instances/`

Files pair by name (stem), in any of the usual image formats; labels must be single-channel ids. Unlike the
official class (label_nc 13, instance maps on, a crash when `--instance_dir` is absent), `label_nc` must be
given and instance edges default to "on exactly when `instances/` exists". `export_landscapes` writes this
layout, so synthetic data and your own go through the same loader.
"""

from __future__ import annotations

from pathlib import Path

from condgen.data.folder import FolderDataset, Sample
from condgen.data.io import IMAGE_EXTENSIONS, list_files
from condgen.registry import register


@register("dataset")
class CustomFolder(FolderDataset):
    """Paired label maps and photos in plain folders.

    Args:
        root: folder holding `images/`, `labels/` and optionally `instances/`, each either flat or split
            into `train/` and `val/` subfolders.
        label_nc: number of classes: ids 0..label_nc-1 (255 = unlabelled, needs contain_dontcare_label).
        instance_edges: use `instances/` (default: when that folder exists).
        class_names: names for `check-data` histograms (default: `root/classes.txt`, one per line).
        (the other arguments: see `FolderDataset`)
    """

    LAYOUT = (
        "  images/*.{jpg,png}      photos\n"
        "  labels/*.png            single-channel class ids 0..label_nc-1, same file names\n"
        "  instances/*.png         optional instance maps (any integer ids), same file names\n"
        "  classes.txt             optional class names, one per line\n"
        "or the same three folders each with train/ and val/ inside"
    )

    def __init__(
        self,
        root: str | Path,
        *,
        label_nc: int,
        split: str = "train",
        contain_dontcare_label: bool = False,
        instance_edges: bool | None = None,
        class_names: tuple[str, ...] = (),
        crop_size: int = 256,
        load_size: int | None = None,
        preprocess: str = "resize_and_crop",
        flip: bool | None = None,
        aspect_ratio: float = 1.0,
    ) -> None:
        root = Path(root).expanduser()
        if instance_edges is None:
            instance_edges = (root / "instances").is_dir()
        if not class_names and (root / "classes.txt").is_file():
            class_names = tuple((root / "classes.txt").read_text().split("\n"))
        self.CLASS_NAMES = tuple(n for n in class_names if n)
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

    def _folder(self, name: str, what: str) -> Path:
        folder = self.require_dir(self.root / name, what)
        split_dir = folder / self.split
        return split_dir if split_dir.is_dir() else folder

    def find_samples(self) -> list[Sample]:
        labels = list_files(self._folder("labels", "label"), IMAGE_EXTENSIONS)
        images = list_files(self._folder("images", "photo"), IMAGE_EXTENSIONS)
        instances = None
        if self.instance_edges:
            if not (self.root / "instances").is_dir():
                raise self.layout_error(
                    self.root / "instances",
                    "instance-map folder not found but instance_edges=True; add it or set "
                    "CustomFolder.instance_edges = False",
                )
            instances = list_files(self._folder("instances", "instance-map"), IMAGE_EXTENSIONS)
        return self.pair(labels, images, instances)
