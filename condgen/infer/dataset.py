"""`DatasetInfo`: what a loaded model knows about its dataset, resolved once when the model is loaded.

Class names, colours, the don't-care and instance conventions. Since this change a checkpoint's
`state.json` records the dataset's registry name and class names at save time (`dataset`); older runs
derive them (with one warning) from their saved config (`train.dataset`) or, for converted official
checkpoints, from the `--dataset_mode` in `convert.json`. Nothing asks gin later.
"""

from __future__ import annotations

import json
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from condgen.data import classes as official
from condgen.data.spec import DataSpec

OFFICIAL_MODES = {"coco": "CocoStuff", "ade20k": "ADE20K", "cityscapes": "Cityscapes"}
OFFICIAL_NAMES = {
    "CocoStuff": official.COCO_STUFF,
    "ADE20K": official.ADE20K,
    "Cityscapes": official.CITYSCAPES,
}
_WARNED: set[str] = set()
DONT_CARE = "(don't care)"


@dataclass(frozen=True)
class DatasetInfo:
    """A model's dataset conventions.

    Attributes:
        name: the dataset's registry name ('CocoStuff', 'SyntheticLandscapes', ...), None when unknown.
        class_names: names of ids 0.. (may be shorter than `label_nc`, or empty).
        palette: the dataset's label colours (`PALETTE`), None for the default palette.
        label_nc: number of classes.
        dontcare: the id meaning "don't care" (`label_nc` where the model has that channel), else None;
            label PNGs carry it as 255 (`DataSpec.encode` maps it).
        instance_edges: the model needs instance maps.
        source: where the entry came from ('state.json', 'config.gin', 'convert.json', 'none').
    """

    name: str | None
    class_names: tuple[str, ...]
    palette: tuple[tuple[int, int, int], ...] | None
    label_nc: int
    dontcare: int | None
    instance_edges: bool
    source: str = field(default="state.json", compare=False)  # where from, not what

    def class_id(self, value: int | str) -> int:
        """A class id, or a class name of this dataset, -> its id (= its channel of the one-hot `seg`)."""
        if isinstance(value, str) and not value.lstrip("-").isdigit():
            if value not in self.class_names:
                known = f"; this dataset's classes: {', '.join(self.class_names)}" if self.class_names else ""
                raise ValueError(f"--resample_class {value!r}: not a class id or a known class name{known}")
            return self.class_names.index(value)
        c = int(value)
        if not 0 <= c < self.label_nc:
            raise ValueError(f"--resample_class {c}: class ids of this model are 0..{self.label_nc - 1}")
        return c

    def entries(self) -> list[tuple[int, str, tuple[int, int, int]]]:
        """(id, name, colour) of every id the generator takes: 0..label_nc-1 and the don't-care id; colours
        from the dataset's palette, else the default one (as `colorize` draws them)."""
        from condgen.data.visualize import default_palette

        palette = [tuple(int(v) for v in c) for c in (self.palette or default_palette(256))]
        return [
            (
                i,
                self.name_of(i) or (DONT_CARE if i == self.dontcare else f"class {i}"),
                palette[i] if i < len(palette) else (0, 0, 0),
            )
            for i in range(self.label_nc + int(self.dontcare is not None))
        ]

    def name_of(self, c: int) -> str | None:
        return self.class_names[c] if 0 <= c < len(self.class_names) else None

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "classes": list(self.class_names),
            "palette": [list(c) for c in self.palette] if self.palette else None,
            "label_nc": self.label_nc,
            "dontcare": self.dontcare,
            "instance_edges": self.instance_edges,
        }

    @classmethod
    def from_json(cls, d: dict[str, Any], source: str) -> DatasetInfo:
        palette = d.get("palette")
        return cls(
            d.get("name"),
            tuple(d.get("classes") or ()),
            tuple(tuple(int(v) for v in c) for c in palette) if palette else None,
            int(d["label_nc"]),
            d.get("dontcare"),
            bool(d.get("instance_edges")),
            source,
        )


def _class_of(name: str | None) -> Any:
    from condgen.registry import get

    if name is None:
        return None
    try:
        return get(name, "dataset").cls
    except KeyError:
        return None


def dataset_info(
    spec: DataSpec, name: str | None, class_names: tuple[str, ...] = (), source: str = "state.json"
) -> DatasetInfo:
    """The entry of dataset `name` for a model of `spec`; names default to its `CLASS_NAMES`."""
    cls = _class_of(name)
    names = (
        tuple(class_names)
        or tuple(getattr(cls, "CLASS_NAMES", ()) or ())
        or OFFICIAL_NAMES.get(name or "", ())
    )
    palette = getattr(cls, "PALETTE", None)
    return DatasetInfo(
        name,
        tuple(str(n) for n in names),
        tuple(tuple(int(v) for v in c) for c in palette) if palette else None,
        spec.label_nc,
        spec.label_nc if spec.contain_dontcare_label else None,
        spec.instance_edges,
        source,
    )


def configured_dataset() -> tuple[str | None, tuple[str, ...]]:
    """(registry name, class names) of the dataset the *active* gin config trains on (`train.dataset`).

    Only called while a run's own config is active (`load`); a custom folder names its classes with
    `class_names` or in `<root>/classes.txt`."""
    import gin

    try:
        name = gin.query_parameter("train.dataset").selector.split(".")[-1]
    except (ValueError, AttributeError):
        return None, ()
    names: tuple[str, ...] = ()
    for param in ("class_names", "root"):
        try:
            value = gin.query_parameter(f"{name}.{param}")
        except (ValueError, TypeError):
            continue
        if param == "class_names" and value:
            names = tuple(value)
        elif param == "root" and not names and value:
            file = Path(value) / "classes.txt"
            if file.is_file():
                names = tuple(n.strip() for n in file.read_text().splitlines() if n.strip())
        if names:
            break
    return name, names


def resolve_dataset(state: dict[str, Any], spec: DataSpec, ckpt: Path) -> DatasetInfo:
    """The dataset entry of a checkpoint: from `state.json`, else derived (call with the run's config
    active); a derived entry warns once per checkpoint that it was not recorded."""
    if isinstance(state.get("dataset"), dict):
        d = state["dataset"]
        return dataset_info(spec, d.get("name"), tuple(d.get("classes") or ()), "state.json")
    name, names = configured_dataset()
    source = "config.gin"
    if name is None:
        name, source = _official_mode(ckpt), "convert.json"
        if name is None:
            source = "none"
    key = str(ckpt.resolve())
    if key not in _WARNED:
        _WARNED.add(key)
        warnings.warn(
            f"{ckpt / 'state.json'} records no dataset (saved before condgen recorded it); derived from "
            f"{source}: {name or 'unknown (no class names, default colours)'}",
            stacklevel=3,
        )
    return dataset_info(spec, name, names, source)


def official_dataset(flags: str) -> str | None:
    """The registry name of an official command line's `--dataset_mode` (the official default: coco);
    None for modes condgen has no class for (custom)."""
    m = re.search(r"--dataset_mode[ =](\w+)", flags)
    return OFFICIAL_MODES.get(m.group(1) if m else "coco")


def _official_mode(ckpt: Path) -> str | None:
    """The dataset of a converted official checkpoint: `--dataset_mode` in `convert.json`."""
    for folder in (ckpt, ckpt.parent):
        meta = folder / "convert.json"
        if meta.is_file():
            return official_dataset(json.loads(meta.read_text()).get("flags", ""))
    return None
