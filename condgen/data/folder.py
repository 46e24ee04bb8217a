"""`FolderDataset`: the shared core of the file-based datasets (COCO-Stuff, ADE20K, Cityscapes, custom).

A subclass only finds its (label, image, instance) triples; this class checks the layout at construction,
reads and checks every file on access (mode, size, id range; one `DataError` naming file and fix), applies
the official preprocessing and maps id 255 to `label_nc` as the official `Pix2pixDataset` always does.
Items are dicts: `label` (1, H, W) int64, `instance` (1, H, W) int64 when `instance_edges`, `image`
(3, H, W) float in [-1, 1], `path` (the label file). One-hot encoding happens later, on the device.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import torch
from PIL import Image
from torch import Tensor
from torch.utils.data import Dataset

from condgen.data import transforms as T
from condgen.data.errors import DataError
from condgen.data.io import read_image, read_instance, read_label
from condgen.data.spec import DataSpec

SPLITS = {"train": "train", "val": "val", "test": "val"}  # official: phase 'test' reads the val files


@dataclass(frozen=True)
class Sample:
    """The files of one item."""

    label: Path
    image: Path
    instance: Path | None = None


class FolderDataset(Dataset):
    """Paired label/photo(/instance) files in an official layout, with the official preprocessing.

    Args:
        root: dataset root folder (see each subclass's `LAYOUT`).
        split: 'train' or 'val' ('test' reads val, as official).
        label_nc: number of classes; ids must lie in 0..label_nc-1 (255 becomes label_nc).
        contain_dontcare_label: keep `label_nc` (from 255) as an extra don't-care class.
        instance_edges: load instance maps; their edges become the last generator channel.
        crop_size: output width; height is round(crop_size / aspect_ratio).
        load_size: resize_and_crop's resize width (default: 286 for a 256 crop in training, else crop_size).
        preprocess: 'resize_and_crop' | 'fixed' (resize to the output size) | 'none' (files already are).
        flip: random horizontal flips (default: training split only).
    """

    LAYOUT: ClassVar[str] = ""
    CLASS_NAMES: ClassVar[tuple[str, ...]] = ()

    def __init__(
        self,
        root: str | Path,
        *,
        split: str,
        label_nc: int,
        contain_dontcare_label: bool,
        instance_edges: bool,
        crop_size: int,
        load_size: int | None,
        preprocess: str,
        flip: bool | None,
        aspect_ratio: float,
    ) -> None:
        if split not in SPLITS:
            raise ValueError(f"split={split!r}; choose 'train' or 'val' ('test' reads val)")
        T.check_preprocess(preprocess, crop_size, load_size)
        self.root = Path(root).expanduser()
        self.split = SPLITS[split]
        self.train = self.split == "train"
        self.label_nc = label_nc
        self.contain_dontcare_label = contain_dontcare_label
        self.instance_edges = instance_edges
        self.crop_size = crop_size
        self.aspect_ratio = aspect_ratio
        self.preprocess = preprocess
        self.load_size = load_size if load_size is not None else T.default_load_size(crop_size, self.train)
        self.flip = self.train if flip is None else flip
        if not self.root.is_dir():
            raise self.layout_error(self.root, "dataset root not found")
        self.samples: list[Sample] = self.find_samples()
        if not self.samples:
            raise self.layout_error(self.root, f"no {self.split} label maps found")

    # ----- to be provided by subclasses
    def find_samples(self) -> list[Sample]:
        raise NotImplementedError

    # ----- layout helpers for subclasses
    def layout_error(self, path: Path, problem: str) -> DataError:
        name = type(self).__name__
        layout = self.LAYOUT.replace("{split}", getattr(self, "split", "{split}"))
        return DataError(
            f"{path}: {problem}. {name} expects this layout under root={self.root}:\n{layout}", path
        )

    def require_dir(self, path: Path, what: str) -> Path:
        if not path.is_dir():
            raise self.layout_error(path, f"{what} folder not found")
        return path

    def pair(
        self,
        labels: Iterable[Path],
        images: Iterable[Path],
        instances: Iterable[Path] | None = None,
        *,
        key: Callable[[Path], str] = lambda p: p.stem,
    ) -> list[Sample]:
        """Match files by `key`; any label, photo or instance map without its partner is a `DataError`."""
        labels, images = list(labels), list(images)
        lossy = [p for p in labels if p.suffix.lower() in (".jpg", ".jpeg")]
        if lossy:
            raise self.layout_error(
                lossy[0],
                f"label maps must be lossless PNG ({len(lossy)} are JPEG); JPEG compression "
                "changes the ids along every edge: re-export the labels as PNG",
            )
        by_key = {"photo": _index(images, key, self), "instance map": None}
        if instances is not None:
            by_key["instance map"] = _index(list(instances), key, self)
        label_keys = _index(labels, key, self)
        for kind, index in by_key.items():
            if index is None:
                continue
            self._check_paired(label_keys, index, f"label map has no {kind}", "label maps are unpaired")
            self._check_paired(
                index,
                label_keys,
                f"{kind} has no label map",
                f"{kind}s are unpaired; add the label map or remove the file",
            )
        inst = by_key["instance map"]
        return [
            Sample(path, by_key["photo"][k], None if inst is None else inst[k])
            for k, path in label_keys.items()
        ]

    def _check_paired(
        self, keys: dict[str, Path], partners: dict[str, Path], lacks: str, unpaired: str
    ) -> None:
        """A `DataError` at the first file of `keys` whose key is not among `partners`, counting them all."""
        for k, path in keys.items():
            if k not in partners:
                n = sum(k2 not in partners for k2 in keys)
                raise self.layout_error(
                    path, f"{lacks} with the same name (key {k!r}); {n} of {len(keys)} {unpaired}"
                )

    # ----- dataset protocol
    @property
    def spec(self) -> DataSpec:
        return DataSpec(
            label_nc=self.label_nc,
            contain_dontcare_label=self.contain_dontcare_label,
            instance_edges=self.instance_edges,
            crop_size=self.crop_size,
            aspect_ratio=self.aspect_ratio,
        )

    @property
    def output_size(self) -> tuple[int, int]:
        """(H, W) of every item."""
        return self.spec.size

    def __len__(self) -> int:
        return len(self.samples)

    def read(self, index: int) -> tuple[Image.Image, Image.Image, Image.Image | None]:
        """The item's files as PIL images, after the per-file checks (readable, id mode, equal sizes)."""
        s = self.samples[index]
        label = read_label(s.label)
        image = read_image(s.image)
        instance = None
        if self.instance_edges:
            if s.instance is None:
                raise DataError(f"{s.label}: instance_edges=True but this item has no instance map", s.label)
            instance = read_instance(s.instance)
        for other, path, kind in ((image, s.image, "photo"), (instance, s.instance, "instance map")):
            if other is not None and other.size != label.size:
                raise DataError(
                    f"{s.label}: label map is {_wh(label.size)} but its {kind} {path} is {_wh(other.size)}; "
                    "the pair is misaligned: re-export one at the other's size or fix the pairing",
                    s.label,
                )
        if self.preprocess == "none" and label.size != self.output_size[::-1]:
            raise DataError(
                f"{s.label}: preprocess='none' needs files of exactly {_wh(self.output_size[::-1])} "
                f"(crop_size={self.crop_size}, aspect_ratio={self.aspect_ratio}) but this one is "
                f"{_wh(label.size)}; use preprocess='fixed' or 'resize_and_crop'",
                s.label,
            )
        return label, image, instance

    def map_ids(self, raw: Tensor, path: Path) -> Tensor:
        """255 -> label_nc (always, as official), then a range check naming the file and the fix."""
        return map_ids(raw, self.label_nc, self.contain_dontcare_label, path)

    def __getitem__(self, index: int) -> dict:
        label, image, instance = self.read(index)
        path = self.samples[index].label
        params = T.sample_params(
            preprocess=self.preprocess,
            crop_size=self.crop_size,
            load_size=self.load_size,
            aspect_ratio=self.aspect_ratio,
            random_crop=self.train,
            flip=self.flip,
        )
        item = {
            "label": self.map_ids(T.ids_to_tensor(T.apply(label, params, ids=True)), path),
            "image": T.image_to_tensor(T.apply(image, params, ids=False)),
            "path": str(path),
        }
        if self.instance_edges:
            item["instance"] = T.ids_to_tensor(T.apply(instance, params, ids=True))
        return item

    def check_item(self, index: int) -> Tensor:
        """Read and check one item's files at native size; returns its (H, W) ids for histograms."""
        label, _, _ = self.read(index)
        return self.map_ids(T.ids_to_tensor(label)[0], self.samples[index].label)

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(root={str(self.root)!r}, split={self.split!r}, items={len(self)}, "
            f"preprocess={self.preprocess!r}, spec={self.spec})"
        )


def map_ids(raw: Tensor, label_nc: int, contain_dontcare_label: bool, path: str | Path) -> Tensor:
    """Official id mapping (255 -> label_nc) plus a `DataError` for ids the one-hot encoding cannot hold."""
    ids = raw.masked_fill(raw == 255, label_nc)
    nc = label_nc + int(contain_dontcare_label)
    if int(ids.min()) >= 0 and int(ids.max()) < nc:
        return ids
    bad = torch.unique(raw[(ids < 0) | (ids >= nc)]).tolist()
    shown = ", ".join(map(str, bad[:8])) + (f" (+{len(bad) - 8} more)" if len(bad) > 8 else "")
    if bad == [255] and not contain_dontcare_label:
        fix = (
            "255 means 'unlabelled': set contain_dontcare_label = True to keep it as a don't-care class, "
            "or, if 255 is a real class (a 0/255 mask), remap it to an id below label_nc"
        )
    else:
        need = max(v for v in bad if v != 255) + 1 if any(v != 255 for v in bad) else label_nc
        fix = f"set label_nc >= {need} or remap these ids into 0..{label_nc - 1}"
    raise DataError(
        f"{path}: label ids {shown} are outside 0..{nc - 1} allowed by label_nc={label_nc}, "
        f"contain_dontcare_label={contain_dontcare_label}; {fix}",
        path,
    )


def _index(paths: list[Path], key: Callable[[Path], str], ds: FolderDataset) -> dict[str, Path]:
    out: dict[str, Path] = {}
    for p in paths:
        k = key(p)
        if k in out:
            raise ds.layout_error(p, f"two files share the pairing key {k!r} (the other is {out[k]})")
        out[k] = p
    return out


def _wh(size: tuple[int, int]) -> str:
    return f"{size[0]}x{size[1]} (WxH)"
