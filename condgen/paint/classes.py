"""The painter's class table: id, name, colour and palette group of every id a run's generator accepts.

Names come from the dataset's `CLASS_NAMES` (a `classes.txt` for custom folders), colours from its `PALETTE`
(else `default_palette`, as `condgen.data.visualize.colorize` does), groups from the dataset's categories
where it has them: COCO-Stuff things by COCO supercategory (their ids are contiguous) and its stuff classes
as one group, Cityscapes by its label categories. Other datasets get one group.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from condgen.data import classes as official
from condgen.data.spec import DataSpec
from condgen.data.visualize import default_palette

# (first id, last id, group): COCO-Stuff things follow the COCO category order (ids 0..90, 0-based).
COCO_GROUPS: tuple[tuple[int, int, str], ...] = (
    (0, 0, "person"), (1, 8, "vehicle"), (9, 14, "outdoor"), (15, 24, "animal"), (25, 32, "accessory"),
    (33, 42, "sports"), (43, 50, "kitchen"), (51, 60, "food"), (61, 70, "furniture"),
    (71, 76, "electronic"), (77, 82, "appliance"), (83, 90, "indoor"), (91, 181, "stuff"),
)  # fmt: skip
CITYSCAPES_GROUPS: tuple[tuple[int, int, str], ...] = (
    (0, 6, "void"), (7, 10, "flat"), (11, 16, "construction"), (17, 20, "object"), (21, 22, "nature"),
    (23, 23, "sky"), (24, 25, "human"), (26, 33, "vehicle"), (34, 34, "void"),
)  # fmt: skip
GROUPS = {"CocoStuff": COCO_GROUPS, "Cityscapes": CITYSCAPES_GROUPS}
OFFICIAL_MODES = {"coco": "CocoStuff", "ade20k": "ADE20K", "cityscapes": "Cityscapes"}
DONT_CARE = "(don't care)"


@dataclass(frozen=True)
class ClassInfo:
    id: int
    name: str
    color: tuple[int, int, int]
    group: str


def dataset_name(run_dir: Path | None = None) -> str | None:
    """Registry name of the dataset the loaded gin config trains on (`train.dataset`), else the official
    `--dataset_mode` recorded by `python -m condgen.convert` in `convert.json`, else None."""
    import gin

    try:
        return gin.query_parameter("train.dataset").selector.split(".")[-1]
    except (ValueError, AttributeError):
        pass
    for folder in ([run_dir, run_dir.parent] if run_dir is not None else []):
        meta = folder / "convert.json"
        if meta.is_file():
            flags = json.loads(meta.read_text()).get("flags", "")
            m = re.search(r"--dataset_mode[ =](\w+)", flags)
            return OFFICIAL_MODES.get(m.group(1) if m else "coco")  # the official parsers' default is coco
    return None


def _names(dataset: str | None) -> tuple[str, ...]:
    import gin

    from condgen.registry import get

    if dataset is None:
        return ()
    try:
        cls = get(dataset, "dataset").cls
    except KeyError:
        return {"CocoStuff": official.COCO_STUFF, "ADE20K": official.ADE20K,
                "Cityscapes": official.CITYSCAPES}.get(dataset, ())
    names = tuple(getattr(cls, "CLASS_NAMES", ()) or ())
    if not names:  # a custom folder names its classes in <root>/classes.txt
        try:
            root = Path(gin.query_parameter(f"{dataset}.root"))
            names = tuple(n.strip() for n in (root / "classes.txt").read_text().splitlines() if n.strip())
        except (ValueError, OSError, TypeError):
            names = ()
    return names


def _palette(dataset: str | None) -> list[tuple[int, int, int]]:
    from condgen.registry import get

    palette = None
    if dataset is not None:
        try:
            palette = getattr(get(dataset, "dataset").cls, "PALETTE", None)
        except KeyError:
            palette = None
    return [tuple(int(v) for v in c) for c in (palette or default_palette(256))]


def class_table(spec: DataSpec, dataset: str | None) -> list[ClassInfo]:
    """One entry per id the generator takes: 0..label_nc-1, plus label_nc (don't care) where it has that."""
    names, palette = _names(dataset), _palette(dataset)
    groups = GROUPS.get(dataset or "", ())
    n = spec.label_nc + int(spec.contain_dontcare_label)
    table = []
    for i in range(n):
        if i < len(names):
            name = names[i]
        else:
            name = DONT_CARE if i == spec.label_nc else f"class {i}"
        group = next((g for lo, hi, g in groups if lo <= i <= hi), "classes")
        if i == spec.label_nc:
            group = "other"
        color = palette[i] if i < len(palette) else (0, 0, 0)
        table.append(ClassInfo(i, name, color, group))
    return table
