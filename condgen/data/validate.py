"""`check_data`: validate a dataset end to end and report counts, sizes and a per-class pixel histogram.

Reads every item's files through the same checks training uses (readable, id mode, matching sizes, id range;
layout and pairing were checked when the dataset was built), collects every `DataError` instead of stopping
at the first, and runs one item through the preprocessing to confirm the output size. `python -m condgen
check-data` prints `DataReport.format()`.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field

import torch
from torch.utils.data import DataLoader, Dataset

from condgen.data.errors import DataError
from condgen.data.sizes import upscaled_sizes
from condgen.data.spec import DataSpec


@dataclass
class DataReport:
    """What `check_data` found. `histogram[c]` counts pixels of class id c at native resolution
    (index `label_nc` is don't care when the dataset has it)."""

    name: str
    spec: DataSpec
    items: int
    checked: int = 0
    histogram: list[int] = field(default_factory=list)
    sizes: Counter = field(default_factory=Counter)
    errors: list[str] = field(default_factory=list)
    error_count: int = 0
    warnings: list[str] = field(default_factory=list)  # usable data that training changes (upscaled files)
    class_names: tuple[str, ...] = ()
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.error_count == 0

    def format(self, *, width: int = 40) -> str:
        """Human-readable report: summary, sizes, errors, then the class histogram with bars."""
        s = self.spec
        lines = [
            f"{self.name}: {self.items} items, {self.checked} checked in {self.seconds:.1f} s, "
            f"{self.error_count} with errors",
            f"spec: label_nc={s.label_nc} contain_dontcare_label={s.contain_dontcare_label} "
            f"instance_edges={s.instance_edges} -> semantic_nc={s.semantic_nc}; "
            f"items are {s.size[1]}x{s.size[0]} (WxH)",
        ]
        if self.sizes:
            common = ", ".join(f"{w}x{h} ({n})" for (w, h), n in self.sizes.most_common(5))
            more = f" and {len(self.sizes) - 5} other sizes" if len(self.sizes) > 5 else ""
            lines.append(f"file sizes (WxH): {common}{more}")
        lines += [f"warning: {w}" for w in self.warnings]
        if self.errors:
            lines.append(f"errors (first {len(self.errors)} of {self.error_count}):")
            lines += [f"  {e}" for e in self.errors]
        total = sum(self.histogram)
        if total:
            never = [str(c) for c, n in enumerate(self.histogram[: s.label_nc]) if n == 0]
            lines.append(
                f"class histogram ({total} pixels; {len(never)} of {s.label_nc} classes never seen"
                + (f": {', '.join(never[:30])}{' ...' if len(never) > 30 else ''}" if never else "")
                + ")"
            )
            top = max(self.histogram)
            for c, n in enumerate(self.histogram):
                if n == 0:
                    continue
                name = self.class_names[c] if c < len(self.class_names) else ""
                if c == s.label_nc and s.contain_dontcare_label:
                    name = "don't care (255)"
                bar = "#" * max(1, round(width * n / top))
                lines.append(f"  {c:4d} {name[:20]:20s} {n:12d} {100 * n / total:6.2f}% {bar}")
        return "\n".join(lines)


class _Checked(Dataset):
    """Each item as (histogram, size, error) so DataLoader workers can check in parallel."""

    def __init__(self, dataset: Dataset, nc: int) -> None:
        self.dataset, self.nc = dataset, nc

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> tuple[torch.Tensor | None, tuple[int, int] | None, str | None]:
        try:
            if hasattr(self.dataset, "check_item"):
                ids = self.dataset.check_item(index)
            else:
                ids = self.dataset[index]["label"][0]
            hist = torch.bincount(ids.flatten(), minlength=self.nc)[: self.nc]
            return hist, (int(ids.shape[-1]), int(ids.shape[-2])), None
        except DataError as err:
            return None, None, str(err)


def check_data(
    dataset: Dataset, max_items: int | None = None, *, max_errors: int = 20, num_workers: int = 0
) -> DataReport:
    """Check every item (or the first `max_items`) of `dataset`; never raises for bad files.

    Args:
        dataset: any condgen dataset (it needs `spec`; `check_item` is used when present).
        max_errors: how many error messages to keep (all are counted).
        num_workers: DataLoader processes for reading files in parallel.
    """
    start = time.perf_counter()
    spec: DataSpec = dataset.spec
    nc = spec.label_nc + int(spec.contain_dontcare_label)
    report = DataReport(
        name=repr(dataset),
        spec=spec,
        items=len(dataset),
        histogram=[0] * nc,
        class_names=tuple(getattr(dataset, "CLASS_NAMES", ())),
    )
    n = len(dataset) if max_items is None else min(max_items, len(dataset))
    checked = _Checked(dataset, nc)
    indices = range(n)
    if num_workers > 0:
        loader = DataLoader(
            torch.utils.data.Subset(checked, indices), batch_size=None, num_workers=num_workers
        )
        results = iter(loader)
    else:
        results = (checked[i] for i in indices)
    hist = torch.zeros(nc, dtype=torch.int64)
    for h, size, err in results:
        report.checked += 1
        if err is not None:
            report.error_count += 1
            if len(report.errors) < max_errors:
                report.errors.append(err)
            continue
        hist += h
        report.sizes[tuple(size)] += 1
    report.histogram = hist.tolist()
    report.warnings += _upscale_warnings(dataset, spec, report.sizes)
    if n and report.ok:  # one item through the preprocessing: the size the networks will see
        try:
            out = dataset[0]
            got = tuple(out["label"].shape[-2:])
            if got != spec.size or tuple(out["image"].shape[-2:]) != spec.size:
                report.error_count += 1
                report.errors.append(
                    f"item 0 is {got[1]}x{got[0]} after preprocessing, spec says "
                    f"{spec.size[1]}x{spec.size[0]}; check crop_size / aspect_ratio"
                )
        except DataError as err:
            report.error_count += 1
            report.errors.append(str(err))
    report.seconds = time.perf_counter() - start
    return report


def _upscale_warnings(dataset: Dataset, spec: DataSpec, sizes: Counter) -> list[str]:
    """Files smaller than the crop: the preprocessing enlarges them (blurry photos, blocky labels)."""
    mode = getattr(dataset, "preprocess", None)
    if mode not in ("resize_and_crop", "fixed"):  # 'none' refuses other sizes; generated data has none
        return []
    crop = (spec.size[1], spec.size[0])
    small = upscaled_sizes(sizes, crop)
    if not small:
        return []
    n = sum(sizes[s] for s in small)
    shown = ", ".join(f"{w}x{h}" for w, h in small[:5]) + (" ..." if len(small) > 5 else "")
    to = (f"load_size {dataset.load_size}" if mode == "resize_and_crop" and hasattr(dataset, "load_size")
          else f"{crop[0]}x{crop[1]}")
    return [f"{n} of {sum(sizes.values())} files are smaller than the {crop[0]}x{crop[1]} crop ({shown}): "
            f"training upscales them to {to} (photos bicubic, labels nearest), so they come out blurry and "
            "blocky; lower crop_size / load_size or leave them out"]
