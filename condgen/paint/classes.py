"""The painter's class table: id, name, colour and palette group of every id a run's generator accepts.

Names and colours come from the model's dataset entry (`condgen.infer.DatasetInfo`, resolved when the model
loads: the dataset's `CLASS_NAMES`, a `classes.txt` for custom folders, its `PALETTE`, else `default_palette`
as `condgen.data.visualize.colorize` does), groups from the dataset's categories
where it has them: COCO-Stuff things by COCO supercategory (their ids are contiguous) and its stuff classes
as one group, Cityscapes by its label categories. Other datasets get one group.
"""

from __future__ import annotations

from dataclasses import dataclass

from condgen.infer.dataset import DONT_CARE, DatasetInfo  # noqa: F401  (DONT_CARE: the painter's name)

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


@dataclass(frozen=True)
class ClassInfo:
    id: int
    name: str
    color: tuple[int, int, int]
    group: str


def class_table(dataset: DatasetInfo) -> list[ClassInfo]:
    """One entry per id the generator takes: 0..label_nc-1, plus label_nc (don't care) where it has that."""
    groups = GROUPS.get(dataset.name or "", ())
    table = []
    for i, name, color in dataset.entries():
        group = next((g for lo, hi, g in groups if lo <= i <= hi), "classes")
        table.append(ClassInfo(i, name, color, "other" if i == dataset.dontcare else group))
    return table
