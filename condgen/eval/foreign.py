"""Images made elsewhere: a results folder of another code base, paired with label maps (and photos) by name.

Known layouts of the generated folder (the first that exists under the given path is used):
- the official SPADE / CC-FPSE / OASIS test output: `results/<name>/test_latest/images/synthesized_image/`
  (the path may be `results/<name>`, its `test_latest`, or the folder itself);
- SDM's `image_sample.py` output: `<results_path>/samples/` (beside its `images/` and `labels/`);
- FreestyleNet's `scripts/LIS.py` output: `outputs/layout2img-samples/<image stem>.jpg`;
- any flat folder of images.
Files pair by stem (`ADE_val_00000001.png` with `ADE_val_00000001.jpg`). Every generated image must have one
size, and each label map the size of its photo; label maps are resized to the generated size with nearest
neighbour, real photos with PIL bicubic, both dimensions at once as the official resize-to-square
preprocessing does (recorded, with whether the aspect ratio changed).
"""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

import torch
from PIL import Image
from torch import Tensor

from condgen.data.folder import map_ids
from condgen.data.io import IMAGE_EXTENSIONS, LABEL_EXTENSIONS, list_files, read_image, read_label
from condgen.data.spec import DataSpec

LAYOUTS = (
    ("official (test_latest/images/synthesized_image)", ("test_latest", "images", "synthesized_image")),
    ("official (images/synthesized_image)", ("images", "synthesized_image")),
    ("official (synthesized_image)", ("synthesized_image",)),
    ("SDM (samples)", ("samples",)),
    ("FreestyleNet (layout2img-samples)", ("layout2img-samples",)),
)


class PairingError(ValueError):
    """Generated images, label maps and real photos do not pair by name; the message lists the names."""


def find_generated(path: str | Path) -> tuple[Path, str]:
    """The folder holding the generated images under `path`, and the name of its layout."""
    path = Path(path).expanduser()
    if not path.is_dir():
        raise FileNotFoundError(f"--images {path}: folder not found")
    for name, parts in LAYOUTS:
        if path.joinpath(*parts).is_dir():
            return path.joinpath(*parts), name
    return path, "flat folder"


def dataset_conventions(dataset: str) -> tuple[int, bool]:
    """(label_nc, contain_dontcare_label) of a registered dataset: its constructor's defaults, or the spec of
    a generated dataset (which needs no files)."""
    from condgen.registry import get

    cls = get(dataset, "dataset").cls
    params = inspect.signature(inspect.unwrap(cls.__init__)).parameters
    if "label_nc" in params and params["label_nc"].default is not inspect.Parameter.empty:
        dc = params.get("contain_dontcare_label")
        return int(params["label_nc"].default), bool(dc.default) if dc is not None else False
    if "length" in params:
        spec = cls(length=1).spec
        return spec.label_nc, spec.contain_dontcare_label
    raise ValueError(f"dataset {dataset!r} has no default label_nc; pass --label_nc")


def _index(files: list[Path], what: str) -> dict[str, Path]:
    out: dict[str, Path] = {}
    for f in files:
        if f.stem in out:
            raise PairingError(f"two {what} files share the name {f.stem!r}: {out[f.stem]} and {f}")
        out[f.stem] = f
    return out


class ForeignImages(torch.utils.data.Dataset):
    """Generated images of another code base with their label maps (and real photos), paired by stem.

    Args:
        images: the generated folder (or a results folder in a known layout, see `LAYOUTS`).
        labels: label maps (single-channel ids in the dataset's file convention, 255 = unlabelled).
        real: real photos (optional: without them only the segmentation score on generated images exists).
        label_nc, contain_dontcare_label: the label convention (see `dataset_conventions`).
        allow_missing: score the pairs that exist when label maps lack a generated image or images lack a
            label map (the names are recorded); default: such a folder is an error listing the names.
    """

    RESIZED = "labels nearest, real photos PIL bicubic, to the generated images' size"

    def __init__(
        self,
        images: str | Path,
        labels: str | Path,
        real: str | Path | None = None,
        *,
        label_nc: int,
        contain_dontcare_label: bool = False,
        allow_missing: bool = False,
    ) -> None:
        self.folder, self.layout = find_generated(images)
        self.label_nc, self.contain_dontcare_label = label_nc, contain_dontcare_label
        fakes = _index(list_files(self.folder, IMAGE_EXTENSIONS), "generated")
        label_dir = Path(labels).expanduser()
        if not label_dir.is_dir():
            raise FileNotFoundError(f"--labels {label_dir}: folder not found")
        labels_by = _index(list_files(label_dir, LABEL_EXTENSIONS, recursive=True), "label")
        self.missing = sorted(set(labels_by) - set(fakes))  # label maps without a generated image
        self.extra = sorted(set(fakes) - set(labels_by))  # generated images without a label map
        if not fakes:
            raise PairingError(f"no images in {self.folder} ({self.layout})")
        if (self.missing or self.extra) and not allow_missing:
            raise PairingError(
                f"{self.folder} and {label_dir} do not pair by name: {_names(self.missing)} have no "
                f"generated image, {_names(self.extra)} no label map; add the files, or pass --allow_missing "
                "to score the pairs that exist (the names are recorded)"
            )
        keys = [k for k in labels_by if k in fakes]
        self.real_dir = Path(real).expanduser() if real is not None else None
        reals: dict[str, Path] = {}
        if self.real_dir is not None:
            if not self.real_dir.is_dir():
                raise FileNotFoundError(f"--real {self.real_dir}: folder not found")
            reals = _index(list_files(self.real_dir, IMAGE_EXTENSIONS, recursive=True), "real")
            lacking = [k for k in keys if k not in reals]
            if lacking:
                raise PairingError(f"{_names(lacking)} have no real photo in {self.real_dir}")
        self.items = [(k, fakes[k], labels_by[k], reals.get(k)) for k in keys]
        if len(self.items) < 2:
            raise PairingError(
                f"only {len(self.items)} generated image pairs with a label map; need 2 or more"
            )
        sizes = {}
        for _, f, _, _ in self.items:
            with Image.open(f) as im:
                sizes.setdefault(im.size, f)
        if len(sizes) > 1:
            (s1, f1), (s2, f2) = list(sizes.items())[:2]
            raise PairingError(
                f"generated images differ in size: {f1} is {s1[0]}x{s1[1]}, {f2} is "
                f"{s2[0]}x{s2[1]} (width x height); score one resolution at a time"
            )
        ((self.width, self.height),) = sizes
        # how label maps and photos reach the generated size (part of the protocol): often they already are
        label_sizes = [_size(lab) for _, _, lab, _ in self.items]
        for (_, _, lab, real_path), size in zip(self.items, label_sizes, strict=True):
            if real_path is not None and _size(real_path) != size:
                w, h = _size(real_path)
                raise PairingError(
                    f"{lab} is {size[0]}x{size[1]} but its photo {real_path} is {w}x{h}: the "
                    "pair is misaligned; pass the photos the label maps were made for"
                )
        ratio = self.width / self.height
        squashed = any(abs(w / h - ratio) > 0.01 * ratio for w, h in label_sizes)
        if any(size != (self.width, self.height) for size in label_sizes):
            self.preprocess = self.RESIZED + (" (aspect ratio changed)" if squashed else "")
        else:
            self.preprocess = "none (files at the generated size)"

    @property
    def spec(self) -> DataSpec:
        return DataSpec(
            label_nc=self.label_nc,
            contain_dontcare_label=self.contain_dontcare_label,
            crop_size=self.width,
            aspect_ratio=self.width / self.height,
        )

    def __len__(self) -> int:
        return len(self.items)

    def check_item(self, index: int) -> Tensor:
        """The item's label ids at the label file's own size (for full-resolution segmenter protocols)."""
        path = self.items[index][2]
        lab = read_label(path)
        return map_ids(torch.from_numpy(_array(lab)).long(), self.label_nc, self.contain_dontcare_label, path)

    def __getitem__(self, index: int) -> dict[str, Any]:
        _, fake_path, label_path, real_path = self.items[index]
        size = (self.width, self.height)
        lab = read_label(label_path)
        ids = torch.from_numpy(_array(lab.resize(size, Image.NEAREST))).long()[None]
        item = {
            "label": map_ids(ids, self.label_nc, self.contain_dontcare_label, label_path),
            "fake": _to_unit(read_image(fake_path)),
            "path": str(label_path),
        }
        if real_path is not None:
            photo = read_image(real_path)
            item["image"] = _to_unit(photo.resize(size, Image.BICUBIC) if photo.size != size else photo)
        return item

    def record(self) -> dict[str, Any]:
        return {
            "generated": str(self.folder),
            "layout": self.layout,
            "labels": str(self.items[0][2].parent),
            "real": None if self.real_dir is None else str(self.real_dir),
            "missing": self.missing,
            "extra": self.extra,
            "preprocess": self.preprocess,
        }

    def __repr__(self) -> str:
        return (
            f"ForeignImages(generated={str(self.folder)!r}, items={len(self)}, label_nc={self.label_nc}, "
            f"size={self.width}x{self.height})"
        )


def _size(path: Path) -> tuple[int, int]:
    with Image.open(path) as im:  # reads the header only
        return im.size


def _array(img: Image.Image) -> Any:
    import numpy as np

    return np.asarray(img, dtype=np.int64)


def _to_unit(img: Image.Image) -> Tensor:
    """RGB PIL image -> (3, H, W) float in [-1, 1], as the datasets give photos."""
    import numpy as np

    x = torch.from_numpy(np.asarray(img, dtype=np.float32)).permute(2, 0, 1)
    return x / 127.5 - 1.0


def _names(keys: list[str], shown: int = 8) -> str:
    if not keys:
        return "none"
    more = f" (+{len(keys) - shown} more)" if len(keys) > shown else ""
    return ", ".join(repr(k) for k in keys[:shown]) + more
