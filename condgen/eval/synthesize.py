"""Synthesis into a results folder: label maps in, the official results layout out.

The inference itself (loading, label encoding, seeded latents, style encoding, local resampling) is
`condgen.infer.SynthesisPipeline`; `synthesize_folder` runs a pipeline over a folder of label maps and writes
the official results layout (`images/input_label/`, `images/synthesized_image/`, `index.html`) plus a
side-by-side `grid.png` (label | style | samples) and `synthesis.json` (what was run). A fixed seed gives
identical outputs whatever the batch size: latents are drawn per (seed, map index, sample).
"""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any

import torch
from PIL import Image
from torch import Tensor

from condgen.data.io import LABEL_EXTENSIONS, list_files, read_image
from condgen.data.spec import DataSpec
from condgen.data.visualize import colorize
from condgen.infer.diffusion import sampler_record
from condgen.infer.latents import (  # noqa: F401  (these names stay importable from here)
    NO_LATENT,
    _seed_of,
    encode_style,
    generate,
    latent_kind,
    latents,
    local,
    to_uint8_image,
    unwrap_condition,
)
from condgen.infer.pipeline import SynthesisPipeline
from condgen.infer.region_styles import region_inputs


def load_generator(path: str | Path, *, ema: bool = False, device: str = "cpu") -> tuple[Any, DataSpec, dict]:
    """(GAN, DataSpec, provenance) of a run, checkpoint or converted official folder, without touching gin's
    global config (`SynthesisPipeline.from_run` holds more: dataset entry, config, latent kind)."""
    pipe = SynthesisPipeline.from_run(path, ema=ema, device=device)
    return pipe.gan, pipe.spec, pipe.provenance


def pipeline_of(
    source: str | Path | SynthesisPipeline, *, ema: bool = False, device: str = "cpu"
) -> SynthesisPipeline:
    """A pipeline as given, or loaded from a run / checkpoint / converted / pretrained folder or name."""
    if isinstance(source, SynthesisPipeline):
        return source
    return SynthesisPipeline.from_pretrained(source, ema=ema, device=device)


def _png(img: Tensor, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(to_uint8_image(img)).save(path)


def image_grid(rows: list[list[Tensor]], pad: int = 2) -> Tensor:
    """Rows of (3, H, W) images in [-1, 1] -> one (3, H', W') image with white gaps."""
    h, w = rows[0][0].shape[-2:]
    cols = max(len(r) for r in rows)
    grid = torch.ones(3, len(rows) * (h + pad) - pad, cols * (w + pad) - pad)
    for i, row in enumerate(rows):
        for j, img in enumerate(row):
            grid[:, i * (h + pad) : i * (h + pad) + h, j * (w + pad) : j * (w + pad) + w] = img.float().cpu()
    return grid


def synthesize_folder(
    source: str | Path | SynthesisPipeline,
    labels_dir: str | Path,
    out_dir: str | Path,
    *,
    samples: int = 1,
    resample_class: int | str | None = None,
    style: str | Path | None = None,
    region_styles: dict[str, Any] | None = None,
    seed: int = 0,
    ema: bool = False,
    instances_dir: str | Path | None = None,
    batch_size: int = 8,
    device: str = "cpu",
    palette: Any = "auto",
    resize: bool = False,
) -> dict:
    """One image per label map in `labels_dir` (`samples` per map with different latents) into `out_dir`.

    Args:
        source: a `SynthesisPipeline`, or what `SynthesisPipeline.from_pretrained` loads (then `ema` and
            `device` apply).
        samples: images per label map (files `<map>_sNN.png`), each with its own latent (VAE) or noise
            vector (3-D noise) drawn from (seed, map index, sample).
        style: a style image: VAE models encode it; region-style models (SEAN) read its regions with each
            label map, or take a `.safetensors` style file.
        region_styles: region-style models: {class id or name: photo or style file}, e.g. {'sky': 'a.jpg'}.
        resample_class: OASIS's local resampling (3-D noise generators): sample 0 is the image with its
            noise; samples 1.. redraw the noise only inside this class's region (a class id, or a name of
            the dataset's classes), so the rest of the image stays as it is. Needs samples >= 2.
        palette: label colours of `input_label/`; 'auto': the dataset's.
        resize: stretch label maps of another aspect ratio than the model's (refused otherwise); maps of
            the same ratio and another size are resized, with one `ResizeWarning` naming the sizes.
    """
    pipe = pipeline_of(source, ema=ema, device=device)
    palette = pipe.dataset.palette if palette == "auto" else palette
    channel = pipe.resample_channel(resample_class, samples) if resample_class is not None else None
    pipe.check(samples=samples, style=style, region_styles=region_styles)
    labels_dir = Path(labels_dir)
    if not labels_dir.is_dir():
        raise FileNotFoundError(f"no label maps in {labels_dir} (not a folder)")
    names, labels, instances = pipe.read_labels(labels_dir, _instances(pipe, labels_dir, instances_dir),
                                                resize=resize)
    style_img, style_stats, regions = None, None, None
    if pipe.latent.name == "region_styles":  # SEAN: the photo's regions read with each map; styles per class
        style_stats, regions = region_inputs(pipe, style, region_styles)
        if isinstance(style_stats, Tensor) and style_stats.dim() == 4:
            style_img = style_stats.cpu()
    elif style is not None:
        style_img, style_stats = encode_style(pipe.gan, read_image(style), pipe.spec, device=pipe.device)
    out = Path(out_dir)
    images = out / "images"
    label_rgb = colorize(labels, palette)
    fakes: list[list[Tensor]] = [[] for _ in names]
    sources = list_files(labels_dir, LABEL_EXTENSIONS)
    for start in range(0, len(names), batch_size):
        idx = list(range(start, min(start + batch_size, len(names))))
        seg = torch.cat(
            [  # map by map, so that an error names its file
                pipe.encode(
                    labels[i : i + 1],
                    instances[i : i + 1] if instances is not None else None,
                    source=str(sources[i]),
                )
                for i in idx
            ]
        )
        for k in range(samples):
            if channel is not None and k > 0:
                fake = local(pipe.gan, seg, idx, seed=seed, sample=k, channel=channel).cpu()
            else:
                fake = pipe.generate(seg, idx, seed=seed, sample=k, style=style_stats,
                                     region_styles=regions).cpu()
            for row, i in enumerate(idx):
                fakes[i].append(fake[row])
    files = []
    for i, name in enumerate(names):
        _png(label_rgb[i], images / "input_label" / f"{name}.png")
        for k, fake in enumerate(fakes[i]):
            file = images / "synthesized_image" / (f"{name}.png" if samples == 1 else f"{name}_s{k:02d}.png")
            _png(fake, file)
            files.append(str(file.relative_to(out)))
    rows = [
        [label_rgb[i]] + ([style_img[0]] if style_img is not None else []) + fakes[i]
        for i in range(len(names))
    ]
    _png(image_grid(rows), out / "grid.png")
    _write_index(out, names, samples)
    record = {
        **pipe.provenance,
        "labels": str(labels_dir),
        "maps": len(names),
        "samples": samples,
        "latent": pipe.latent.describe,
        "sampler": sampler_record(pipe.G),  # diffusion models: steps, method, guidance scale
        "resample_class": None
        if channel is None
        else {
            "id": channel,
            "name": pipe.dataset.name_of(channel),
            "maps_without_it": [
                n for n, lab in zip(names, labels, strict=True) if not (lab == channel).any()
            ],
            "how": "sample 0: the map's noise; sample k: noise k inside the class's region only",
        },
        "seed": seed,
        "style": str(style) if style else None,
        "region_styles": {str(k): str(v) for k, v in (region_styles or {}).items()} or None,
        "size": list(pipe.spec.size),
        "files": files,
    }
    (out / "synthesis.json").write_text(json.dumps(record, indent=1) + "\n")
    return record


def _instances(
    pipe: SynthesisPipeline, labels_dir: Path, instances_dir: str | Path | None
) -> list[Path] | None:
    """The instance map of every label map (same file name), for models with instance edges."""
    if not pipe.spec.instance_edges:
        return None
    out = []
    for f in list_files(labels_dir, LABEL_EXTENSIONS):
        if instances_dir is None or not (Path(instances_dir) / f.name).is_file():
            raise FileNotFoundError(
                f"{f}: the model uses instance edges; put its instance map at "
                f"{Path(instances_dir or '<instances>') / f.name} (--instances DIR)"
            )
        out.append(Path(instances_dir) / f.name)
    return out


def _write_index(out: Path, names: list[str], samples: int) -> None:
    """A results page in the spirit of the official `index.html`: label and synthesized images per map."""
    lines = ["<!doctype html><meta charset='utf-8'><title>condgen synthesis</title><table>"]
    for name in names:
        cells = [f"images/input_label/{name}.png"]
        cells += (
            [f"images/synthesized_image/{name}.png"]
            if samples == 1
            else [f"images/synthesized_image/{name}_s{k:02d}.png" for k in range(samples)]
        )
        imgs = "".join(
            f"<td><img src='{html.escape(c)}' width=160><br>{html.escape(Path(c).name)}</td>" for c in cells
        )
        lines.append(f"<tr>{imgs}</tr>")
    (out / "index.html").write_text("\n".join(lines + ["</table>"]) + "\n")
