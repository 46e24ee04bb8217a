"""What a run leaves for people: sample grids (label | real | fake), the metrics JSONL, the run summary.

Label maps are coloured by `condgen.data.visualize.colorize` with the dataset's own palette when it has one.
Nothing here touches the training RNG.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from typing import Any

import torch
from einops import rearrange
from PIL import Image
from torch import Tensor

from condgen.networks.discriminator import unwrap
from condgen.rundir import METRICS_FILE, SAMPLES_DIR, SUMMARY_FILE, TB_DIR, sample_path

VIEW_HEIGHT = 128  # small samples are enlarged to about this height, so that a 64 px grid is readable


def sample_grid(label_rgb: Tensor, real: Tensor, fake: Tensor, *, upscale: int | None = None) -> Tensor:
    """One row per sample: label | real | fake, 2 px gaps; (3, H', W') float in [0, 1].

    `upscale` repeats every pixel k x k (default: up to `VIEW_HEIGHT` px high; 64 px samples give a grid
    388 px wide); the pixels themselves are untouched, no interpolation."""
    b, _, h, w = real.shape
    k = upscale if upscale is not None else max(1, VIEW_HEIGHT // h)
    h, w, pad = h * k, w * k, 2
    grid = torch.ones(3, b * (h + pad) - pad, 3 * (w + pad) - pad)
    for i in range(b):
        for j, img in enumerate((label_rgb[i], real[i], fake[i])):
            top, left = i * (h + pad), j * (w + pad)
            big = img.float().cpu().repeat_interleave(k, -2).repeat_interleave(k, -1)
            grid[:, top : top + h, left : left + w] = (big.clamp(-1, 1) + 1) / 2
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


# what `log_step` writes beside the objective's loss terms (and `MetricsLog.write`'s time stamp)
RECORD_KEYS = ("time", "step", "epoch", "lr_G", "lr_D", "images_per_s")


def loss_keys(records: list[dict[str, Any]]) -> list[str]:
    """The loss terms a run logged, in the order they first appear (G's, then D's, as the objective returns
    them): every numeric key of the records that is not bookkeeping. Whatever the objective was (OASIS's
    `G_adv` / `D_labelmix`, a user's `G_toy`), its terms are found without a list of known names."""
    keys: dict[str, None] = {}
    for record in records:
        for key, value in record.items():
            if key not in RECORD_KEYS and isinstance(value, int | float) and not isinstance(value, bool):
                keys.setdefault(key)
    return list(keys)


# ------------------------------------------------------------------------------- what the loop reports
def fixed_samples(data: Any, n: int, seed: int) -> dict[str, Tensor]:
    """The first `n` items, loaded as in epoch 0 without touching the training RNG."""
    from torch.utils.data import default_collate

    from condgen.train.data import SeededItems, item_seed

    items = SeededItems(data)
    n = min(n, len(data))
    return default_collate([items[(i, item_seed(seed, -1, i))] for i in range(n)])


@torch.no_grad()
def write_samples(run: Any, run_dir: Path, step: int, fixed: dict) -> Path:
    """Grid of label | real | fake for the fixed items, G in eval mode, seeded: the training RNG is kept."""
    from condgen.data.visualize import colorize

    G, E = run.sample_networks()
    device = run.device
    seg, real = run.to_device(fixed)
    was_training = G.training
    G.eval()
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(run.settings.seed)
        if E is not None:
            e_training = E.training
            E.eval()
            z, _ = E(real)  # the posterior mean: the real image's style, no sampling noise
            E.train(e_training)
            fake = G(seg, z)
        elif hasattr(unwrap(G), "encode_style"):  # SEAN: reconstruction, the real images' region styles
            fake = G(seg, real)
        else:
            fake = run.step.objective.sample(G, seg)  # a GAN: G(seg); a diffusion model: its sampler
    G.train(was_training)
    grid = sample_grid(colorize(fixed["label"], getattr(run.data, "PALETTE", None)), real, fake)
    path = save_png(grid, sample_path(run_dir, step))
    tensorboard(run.accelerator, lambda w: w.add_image("samples/label_real_fake", grid, step))
    return path


def tensorboard(accelerator: Any, fn: Any) -> None:
    """Call `fn(SummaryWriter)` if the TensorBoard tracker is running."""
    try:
        fn(accelerator.get_tracker("tensorboard", unwrap=True))
    except (ValueError, AttributeError):  # tracker not started (init failed or tensorboard missing)
        pass


def start_trackers(run: Any, start: int, config: str, run_dir: Path) -> None:
    """TensorBoard under tb/; records after the starting step (a killed attempt's, or a resumed run's past its
    checkpoint) are dropped: a new start (no checkpoint) deletes the event files a killed earlier attempt
    left, a resumed run purges the steps after its checkpoint."""
    if run.main and start == 0 and (run_dir / TB_DIR).is_dir():
        # purge_step alone would hide them from TensorBoard but leave the files (and their sample grids)
        shutil.rmtree(run_dir / TB_DIR)
    purge = {"purge_step": start + 1}
    run.accelerator.init_trackers(TB_DIR, init_kwargs={"tensorboard": purge})
    if run.main and start == 0:
        as_markdown = "\n".join("    " + line for line in config.splitlines())
        tensorboard(run.accelerator, lambda w: w.add_text("config.gin", as_markdown, 0))


def progress_bar(total: int, initial: int, enabled: bool) -> Any:
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, disable=not enabled, unit="step", dynamic_ncols=True)


def log_step(run: Any, metrics: MetricsLog, bar: Any, done: int, epoch: int, factor: float,
             values: dict[str, float], images_per_s: float) -> None:
    """One metrics record: JSONL, TensorBoard scalars and the progress bar's postfix."""
    lrs = {name: run.lrs[name] * factor for name in run.step.optimizers}  # GANs: G and D
    metrics.write({"step": done, "epoch": epoch, **{f"lr_{k}": v for k, v in lrs.items()}, **values,
                   "images_per_s": round(images_per_s, 3)})
    run.accelerator.log({"epoch": epoch, **{f"lr/{k}": v for k, v in lrs.items()},
                         "speed/images_per_s": images_per_s,
                         **{f"loss/{k}": v for k, v in values.items()}}, step=done)
    bar.set_postfix({**{k: f"{v:.3g}" for k, v in values.items()}, "img/s": f"{images_per_s:.1f}"},
                    refresh=False)


def write_summary(run: Any, run_dir: Path, *, steps: int, start: int, final: Any, wall: float,
                  hashes: list[str], config_file: Path) -> dict[str, Any]:
    """summary.json and the closing lines on the terminal: where everything is, time, speed, hashes."""
    summary = {
        "step": steps, "checkpoint": str(final), "config": str(config_file),
        "metrics": str(run_dir / METRICS_FILE), "samples": str(run_dir / SAMPLES_DIR),
        "tensorboard": str(run_dir / TB_DIR), "processes": run.accelerator.num_processes,
        "wall_s": round(wall, 1),
        "images_per_s": round((steps - start) * run.images_per_step / max(wall, 1e-9), 3),
        "weights_sha256": hashes,
    }
    (run_dir / SUMMARY_FILE).write_text(json.dumps(summary, indent=1))
    newest = sorted((run_dir / SAMPLES_DIR).glob("step_*.png"))
    print(f"\ntrained {steps} steps in {wall:.0f} s ({summary['images_per_s']:.2f} images/s)")
    print(f"  samples:     {newest[-1] if newest else '(none: sample_every is off)'}")
    print(f"  checkpoint:  {final}")
    print(f"  config:      {config_file}")
    print(f"  metrics:     {run_dir / METRICS_FILE}")
    print(f"  TensorBoard: tensorboard --logdir {run_dir / TB_DIR}")
    return summary
