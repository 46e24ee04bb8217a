"""What a run leaves for people: sample grids (label | real | fake), the metrics JSONL, the run summary.

Label maps are coloured by `condgen.data.visualize.colorize` with the dataset's own palette when it has one.
Nothing here touches the training RNG.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import torch
from einops import rearrange
from PIL import Image
from torch import Tensor


def sample_grid(label_rgb: Tensor, real: Tensor, fake: Tensor) -> Tensor:
    """One row per sample: label | real | fake, 2 px gaps; (3, H', W') float in [0, 1]."""
    b, _, h, w = real.shape
    pad = 2
    grid = torch.ones(3, b * (h + pad) - pad, 3 * (w + pad) - pad)
    for i in range(b):
        for j, img in enumerate((label_rgb[i], real[i], fake[i])):
            top, left = i * (h + pad), j * (w + pad)
            grid[:, top : top + h, left : left + w] = (img.float().cpu().clamp(-1, 1) + 1) / 2
    return grid


def save_png(grid: Tensor, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    array = rearrange((grid * 255).round().to(torch.uint8), "c h w -> h w c").numpy()
    Image.fromarray(array).save(path)
    return path


class MetricsLog:
    """Appends one JSON object per logged step to `metrics.jsonl` (main process only)."""

    def __init__(self, path: str | Path, enabled: bool = True) -> None:
        self.path, self.enabled = Path(path), enabled

    def truncate_after(self, step: int) -> None:
        """Keep only records up to `step` (a resumed run rewrites the later ones)."""
        if self.enabled and self.path.is_file():
            kept = [r for r in read_metrics(self.path) if r.get("step", 0) <= step]
            self.path.write_text("".join(json.dumps(r) + "\n" for r in kept))

    def write(self, record: dict[str, Any]) -> None:
        if not self.enabled:
            return
        with self.path.open("a") as f:
            f.write(json.dumps({"time": round(time.time(), 3), **record}) + "\n")


def read_metrics(path: str | Path) -> list[dict[str, Any]]:
    """The records of a `metrics.jsonl` file, in order."""
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]
