"""Comparison reports: several runs side by side, as markdown and HTML, with PNG plots and sample grids.

`compare(runs, out)` reads each run's `config.gin`, `metrics.jsonl`, `summary.json` and `eval/*.json`
(written by `condgen eval`), rebuilds its networks for parameter counts, and generates every run's image for
the same validation label maps with the same seed. It writes `report.md`, `report.html`, `losses.png`,
`metrics.png` (metrics over training, one point per evaluated checkpoint) and `samples.png`
(label | real | one column per run). The metrics table carries the protocol line of the evaluations, and a
last row with the segmenter's score on the real images (the upper bound).
"""

from __future__ import annotations

import html
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from condgen.rundir import METRICS_FILE, SUMMARY_FILE, eval_files
from condgen.train.build import paper_names  # noqa: F401  (moved to train; this name stays importable)

# Pix2PixHD's terms (SPADE, CC-FPSE), kept importable; `losses.png` shows whatever terms each run's
# metrics.jsonl holds (`condgen.train.report.loss_keys`), as the run's objective declared and logged them.
LOSS_KEYS = ("G_GAN", "G_feat", "G_VGG", "G_KLD", "D_fake", "D_real")
_EVAL_NAME = re.compile(r"^(?P<split>\w+?)_step(?P<step>\d+)_(?P<features>\w+?)(?P<ema>_ema)?\.json$")


@dataclass
class RunSummary:
    """What the report needs from one run."""

    name: str
    path: Path
    generator: str = "?"
    discriminator: str = "?"
    params: dict[str, int] = field(default_factory=dict)
    steps: int | None = None
    train_images_per_s: float | None = None
    train_wall_s: float | None = None
    losses: list[dict] = field(default_factory=list)
    evals: list[tuple[int, dict]] = field(default_factory=list)  # (step, metrics record), by step

    @property
    def final(self) -> dict | None:
        return self.evals[-1][1] if self.evals else None


def summarize_run(
    path: str | Path, *, name: str | None = None, split: str = "val", features: str | None = None
) -> RunSummary:
    """Collect one run's facts; `features` picks the evaluations ('inception' / 'segmenter', default any)."""
    from condgen.infer.pipeline import SynthesisPipeline
    from condgen.train.report import read_metrics

    path = Path(path)
    run = RunSummary(name=name or path.name, path=path)
    pipe = SynthesisPipeline.from_run(path)
    run.generator, run.discriminator = pipe.paper_names
    run.params = dict(pipe.params)
    if (path / SUMMARY_FILE).is_file():
        summary = json.loads((path / SUMMARY_FILE).read_text())
        run.steps, run.train_images_per_s = summary.get("step"), summary.get("images_per_s")
        run.train_wall_s = summary.get("wall_s")
    if (path / METRICS_FILE).is_file():
        run.losses = read_metrics(path / METRICS_FILE)
    for file in eval_files(path):
        m = _EVAL_NAME.match(file.name)
        if not m or m["split"] != split or (features and m["features"] != features) or m["ema"]:
            continue
        run.evals.append((int(m["step"]), json.loads(file.read_text())))
    run.evals.sort(key=lambda e: e[0])
    return run


# ------------------------------------------------------------------------------------------------ figures
def plot_losses(runs: list[RunSummary], path: Path, smooth: int = 5) -> Path | None:
    """One panel per loss, one line per run (moving average over `smooth` records)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    from condgen.train.report import loss_keys

    keys = list(dict.fromkeys(k for run in runs for k in loss_keys(run.losses)))  # each run's, in order
    if not keys:
        return None
    cols = min(3, len(keys))
    rows = -(-len(keys) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.0 * rows), squeeze=False)
    for ax, key in zip(axes.flat, keys, strict=False):
        for run in runs:
            pts = [(r["step"], r[key]) for r in run.losses if key in r]
            if not pts:
                continue
            steps, vals = (np.array(x, dtype=float) for x in zip(*pts, strict=True))
            w = max(1, min(smooth, len(vals)))
            vals = np.convolve(vals, np.ones(w) / w, mode="valid")
            ax.plot(
                steps[w - 1 :], vals, label=run.name, linewidth=1.2, marker="." if len(vals) < 20 else None
            )
        ax.set_title(key)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(keys) :]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


# what older metrics files (written before metrics stated their columns) show
DEFAULT_COLUMNS = (
    {"key": "fid", "header": "FID", "better": "lower", "scale": 1.0},
    {"key": "kid_mean", "header": "KID", "better": "lower", "scale": 1.0},
    {"key": "miou", "header": "mIoU", "better": "higher", "scale": 100.0},
)
TABLE_KEYS = ("fid", "kid_mean", "miou")  # the table's fixed columns; other metrics' columns follow them


def metric_columns(runs: list[RunSummary]) -> list[dict]:
    """The report columns the runs' metric records declare (each metric's `columns`), in order, once."""
    seen: dict[str, dict] = {}
    for run in runs:
        for _, rec in run.evals:
            for c in rec.get("columns", DEFAULT_COLUMNS):
                seen.setdefault(c["key"], c)
    return list(seen.values()) or list(DEFAULT_COLUMNS)


def plot_metrics(runs: list[RunSummary], path: Path) -> Path | None:
    """FID, KID and mIoU against the training step of each evaluated checkpoint."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    columns = {c["key"]: c for c in metric_columns(runs)}
    keys = [k for k in columns if any(k in rec["metrics"] for run in runs for _, rec in run.evals)]
    if not keys:
        return None
    fig, axes = plt.subplots(1, len(keys), figsize=(4.2 * len(keys), 3.0), squeeze=False)
    for ax, key in zip(axes.flat, keys, strict=True):
        for run in runs:
            pts = [(s, rec["metrics"][key]) for s, rec in run.evals if key in rec["metrics"]]
            if pts:
                ax.plot(*zip(*pts, strict=True), marker="o", label=run.name, linewidth=1.2)
        ax.set_title(f"{columns[key]['header']} ({columns[key]['better']} is better)")
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
    axes.flat[0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


@torch.no_grad()
def sample_grid(
    runs: list[RunSummary], path: Path, *, maps: int = 6, seed: int = 0, upscale: int | None = None
) -> Path:
    """label | real | one generated column per run, for the first `maps` validation label maps.

    `upscale` enlarges every image by pixel repetition (default: up to 128 px high, so 64 px samples are
    readable in a report); the pixels themselves are untouched.
    """
    from condgen.data.visualize import colorize
    from condgen.eval.split import collate_items, eval_dataset
    from condgen.eval.synthesize import _png, image_grid
    from condgen.infer.pipeline import SynthesisPipeline

    columns, spec0, batch, palette = [], None, None, None
    for run in runs:
        pipe = SynthesisPipeline.from_run(run.path)
        spec = pipe.spec
        if spec0 is None:
            spec0, palette = spec, pipe.dataset.palette
            with pipe.config_scope():  # the first run's dataset bindings build the split
                ds = eval_dataset(spec, split="val", num_images=maps)
            batch = collate_items(ds, list(range(min(maps, len(ds)))))
        elif (spec.semantic_nc, spec.size) != (spec0.semantic_nc, spec0.size):
            raise ValueError(
                f"{run.name} works at {spec.size} with {spec.semantic_nc} label channels, "
                f"{runs[0].name} at {spec0.size} with {spec0.semantic_nc}: not comparable"
            )
        seg = pipe.encode(batch["label"], batch.get("instance"))
        columns.append(pipe.generate(seg, list(range(len(seg))), seed=seed))
    labels = colorize(batch["label"], palette)
    k = upscale if upscale is not None else max(1, 128 // spec0.size[0])
    rows = [[labels[i], batch["image"][i]] + [c[i] for c in columns] for i in range(len(labels))]
    rows = [[img.repeat_interleave(k, -1).repeat_interleave(k, -2) for img in row] for row in rows]
    _png(image_grid(rows), path)
    return path


# ------------------------------------------------------------------------------------------------- tables
def _fmt(value: Any, scale: float = 1.0, digits: int = 2) -> str:
    return "–" if value is None else f"{value * scale:.{digits}f}"


def metrics_table(runs: list[RunSummary]) -> tuple[list[str], list[list[str]]]:
    """Header and rows of the comparison table (values of each run's latest evaluation)."""
    header = [
        "run",
        "G",
        "D",
        "params G",
        "params D",
        "steps",
        "train img/s",
        "gen img/s",
        "FID",
        "KID x1e3",
        "mIoU",
        "pixel acc.",
    ]
    extra = [c for c in metric_columns(runs) if c["key"] not in TABLE_KEYS]
    header += [c["header"] for c in extra]
    rows = []
    for run in runs:
        m = run.final["metrics"] if run.final else {}
        kid = "–"
        if "kid_mean" in m:  # the spread is 0 when every subset holds all images (subset size = N)
            spread = f" ± {m['kid_std'] * 1e3:.2f}" if m["kid_std"] * 1e3 >= 0.005 else ""
            kid = f"{m['kid_mean'] * 1e3:.2f}{spread}"
        g = f"{run.params.get('G', 0) / 1e6:.2f}M" + (
            f" (+{run.params['E'] / 1e6:.2f}M E)" if "E" in run.params else ""
        )
        rows.append(
            [
                run.name,
                run.generator,
                run.discriminator,
                g,
                f"{run.params.get('D', 0) / 1e6:.2f}M",
                str(run.evals[-1][0] if run.evals else run.steps),
                _fmt(run.train_images_per_s, digits=1),
                _fmt(m.get("generation_images_per_s"), digits=1),
                _fmt(m.get("fid")),
                kid,
                _fmt(m.get("miou"), 100, 1),
                _fmt(m.get("pixel_accuracy"), 100, 1),
                *[_fmt(m.get(c["key"]), c.get("scale", 1.0), 3) for c in extra],
            ]
        )
    bound = next(
        (run.final["metrics"] for run in runs if run.final and "real_miou" in run.final["metrics"]), None
    )
    if bound:
        rows.append(
            [
                "real images (segmenter upper bound)",
                "",
                "",
                "",
                "",
                "",
                "",
                "",
                "",
                "",
                _fmt(bound["real_miou"], 100, 1),
                _fmt(bound["real_pixel_accuracy"], 100, 1),
                *[""] * len(extra),
            ]
        )
    return header, rows


def protocol_lines(runs: list[RunSummary]) -> list[str]:
    """The distinct protocol lines of the runs' latest evaluations (one, when the comparison is fair)."""
    lines = []
    for run in runs:
        if run.final and run.final["protocol_line"] not in lines:
            lines.append(run.final["protocol_line"])
    return lines


def compare(
    run_dirs: list[str | Path],
    out: str | Path,
    *,
    names: list[str] | None = None,
    split: str = "val",
    features: str | None = None,
    maps: int = 6,
    seed: int = 0,
    title: str = "condgen comparison",
    notes: str = "",
    name: str = "report",
) -> Path:
    """Write `<name>.md`, `<name>.html` and PNGs into `out`; returns the markdown path.

    With the default `name` the files are report.md, report.html, losses.png, metrics.png, samples.png;
    any other name prefixes the PNGs (`synthetic_losses.png`), so several reports can share a folder.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    names = names or [Path(r).name for r in run_dirs]
    runs = [
        summarize_run(r, name=n, split=split, features=features) for r, n in zip(run_dirs, names, strict=True)
    ]
    prefix = "" if name == "report" else f"{name}_"
    figures = {
        "losses": plot_losses(runs, out / f"{prefix}losses.png"),
        "metrics": plot_metrics(runs, out / f"{prefix}metrics.png"),
        "samples": sample_grid(runs, out / f"{prefix}samples.png", maps=maps, seed=seed),
    }
    header, rows = metrics_table(runs)
    protocol = protocol_lines(runs)
    md = [f"# {title}", ""]
    if notes:
        md += [notes.strip(), ""]
    md += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    md += ["| " + " | ".join(r) + " |" for r in rows]
    md += [
        "",
        "Protocol: " + (" / ".join(protocol) if protocol else "(no evaluation found: run `condgen eval`)"),
    ]
    if len(protocol) > 1:
        md += ["", "**The runs were evaluated with different protocols: the numbers are not comparable.**"]
    md += [""]
    captions = {
        "metrics": "Metrics over training (one point per evaluated checkpoint)",
        "losses": "Training losses (moving average)",
        "samples": "Same validation label maps, same seed: label | real | " + " | ".join(names),
    }
    for key in ("metrics", "losses", "samples"):
        if figures[key] is not None:
            md += [f"![{captions[key]}]({figures[key].name})", "", f"*{captions[key]}.*", ""]
    (out / f"{name}.md").write_text("\n".join(md))
    _write_html(out / f"{name}.html", title, notes, header, rows, protocol, figures, captions)
    return out / f"{name}.md"


def _write_html(
    path: Path,
    title: str,
    notes: str,
    header: list[str],
    rows: list[list[str]],
    protocol: list[str],
    figures: dict[str, Path | None],
    captions: dict[str, str],
) -> None:
    e = html.escape
    parts = [
        f"<!doctype html><meta charset='utf-8'><title>{e(title)}</title>",
        "<style>body{font-family:sans-serif;max-width:1100px;margin:auto}table{border-collapse:collapse}"
        "td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}"
        "td:first-child{text-align:left}</style>",
        f"<h1>{e(title)}</h1>",
    ]
    if notes:
        parts.append("".join(f"<p>{e(p)}</p>" for p in notes.strip().split("\n\n")))
    parts.append("<table><tr>" + "".join(f"<th>{e(h)}</th>" for h in header) + "</tr>")
    parts += ["<tr>" + "".join(f"<td>{e(c)}</td>" for c in r) + "</tr>" for r in rows]
    parts.append("</table>")
    parts.append(f"<p><b>Protocol:</b> {e(' / '.join(protocol) or 'no evaluation found')}</p>")
    for key, fig in figures.items():
        if fig is not None:
            parts.append(
                f"<figure><img src='{e(fig.name)}' style='max-width:100%'><figcaption>{e(captions[key])}"
                "</figcaption></figure>"
            )
    path.write_text("\n".join(parts) + "\n")
