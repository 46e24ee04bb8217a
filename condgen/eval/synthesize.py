"""Synthesis from a trained run or a converted official checkpoint: label maps in, photos out.

`load_generator(path)` rebuilds the networks of a run directory (its latest checkpoint), one checkpoint
folder, or a `python -m condgen.convert` output. Latents are drawn per (seed, image index, sample index) from
their own generator, so an image never depends on batch size, process count or what else is generated: a
fixed seed gives identical outputs. Style-guided synthesis encodes a style image with the VAE encoder and
uses its posterior mean for the first sample and posterior draws for the others. `synthesize_folder` writes
the official results layout (`images/input_label/`, `images/synthesized_image/`, `index.html`) plus a
side-by-side `grid.png` (label | style | samples) and `synthesis.json` (what was run).
"""

from __future__ import annotations

import html
import json
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from condgen.data.io import LABEL_EXTENSIONS, list_files, read_image, read_instance, read_label
from condgen.data.labels import encode_labels
from condgen.data.sizes import ResizeWarning, fit_size, resize_summary
from condgen.data.spec import DataSpec
from condgen.data.visualize import colorize


def _seed_of(*values: int) -> int:
    """A well-spread 63-bit seed from a few integers (numpy's SeedSequence hashing)."""
    state = np.random.SeedSequence([v & 0xFFFFFFFF for v in values]).generate_state(2, dtype=np.uint64)
    return int(state[0] >> np.uint64(1))


def latents(z_dim: int, indices: list[int], *, seed: int, sample: int = 0) -> Tensor:
    """(len(indices), z_dim) N(0, I) latents, each from its own generator seeded by (seed, index, sample)."""
    rows = [
        torch.randn(z_dim, generator=torch.Generator().manual_seed(_seed_of(seed, i, sample)))
        for i in indices
    ]
    return torch.stack(rows)


def load_generator(path: str | Path, *, ema: bool = False, device: str = "cpu") -> tuple[Any, DataSpec, dict]:
    """(GAN, DataSpec, provenance) of a run, checkpoint or converted official folder (`load_run`)."""
    from condgen.train.state import load_run

    return load_run(path, ema=ema, device=device)


def dataset_attr(name: str) -> Any:
    """A class attribute (`PALETTE`, `CLASS_NAMES`) of the dataset the loaded run's gin config names,
    else None."""
    import gin

    from condgen.registry import get

    try:
        ref = gin.query_parameter("train.dataset")
        return getattr(get(ref.selector.split(".")[-1], "dataset").cls, name, None)
    except (ValueError, KeyError, AttributeError):
        return None


def dataset_palette() -> Any:
    """Label colours (`PALETTE`) of the dataset the loaded run's gin config names, else None."""
    return dataset_attr("PALETTE")


def class_channel(value: int | str, spec: DataSpec, names: Any = None) -> int:
    """A class id, or a class name of the dataset (`CLASS_NAMES`), -> its channel of the one-hot `seg`."""
    names = tuple(names or ())
    if isinstance(value, str) and not value.lstrip("-").isdigit():
        if value not in names:
            known = f"; this dataset's classes: {', '.join(names)}" if names else ""
            raise ValueError(f"--resample_class {value!r}: not a class id or a known class name{known}")
        return names.index(value)
    c = int(value)
    if not 0 <= c < spec.label_nc:
        raise ValueError(f"--resample_class {c}: class ids of this model are 0..{spec.label_nc - 1}")
    return c


def encode_seg(
    label: Tensor, spec: DataSpec, instance: Tensor | None = None, source: str = "label map"
) -> Tensor:
    """Label ids (b, 1, H, W) -> the generator's `seg`; 255 becomes don't care when the dataset has it."""
    label = label.long()
    if spec.contain_dontcare_label:
        label = label.masked_fill(label == 255, spec.label_nc)
    if spec.instance_edges and instance is None:
        raise ValueError(
            f"{source}: this model was trained with instance edges; give the instance maps "
            "(--instances DIR with files named like the label maps)"
        )
    return encode_labels(
        label,
        spec.label_nc,
        contain_dontcare_label=spec.contain_dontcare_label,
        instance=instance if spec.instance_edges else None,
        instance_edges=spec.instance_edges,
        source=source,
    )


def latent_kind(G: Any) -> str | None:
    """What makes a generator multi-modal: 'vae' (a z vector into `fc`), 'noise' (OASIS's 3-D noise,
    `NoiseCondition`), or None (label map only: one image per map)."""
    from condgen.blocks.noise import NoiseCondition
    from condgen.networks.discriminator import unwrap

    G = unwrap(G)
    if getattr(G, "use_vae", False):
        return "vae"
    if isinstance(getattr(G, "condition", None), NoiseCondition):
        return "noise"
    return None


NO_LATENT = (
    "this generator takes no latent (no VAE, no 3-D noise), so every sample would be identical; resampling "
    "needs a generator with 3-D noise (OASIS, `condition = @NoiseCondition`) or a VAE (use_vae = True)"
)


@torch.no_grad()
def generate(
    gan: Any,
    seg: Tensor,
    indices: list[int],
    *,
    seed: int,
    sample: int = 0,
    style: tuple[Tensor, Tensor] | None = None,
) -> Tensor:
    """Images (b, 3, H, W) in [-1, 1] for `seg`; latents from (seed, index, sample) when G takes one.

    A VAE generator gets a z vector; a 3-D noise generator (OASIS) a noise vector per image, replicated
    over the map; both drawn per (seed, index, sample), so outputs never depend on the global RNG.

    Args:
        style: (mu, logvar) of a style image (b or 1 rows); sample 0 uses mu, others mu + std * eps.
    """
    G = gan.G
    kind = latent_kind(G)
    if kind == "noise":
        z_dim = unwrap_condition(G).z_dim
        return G(seg, latents(z_dim, indices, seed=seed, sample=sample).to(seg.device, seg.dtype))
    if kind is None:
        return G(seg)
    eps = latents(G.z_dim, indices, seed=seed, sample=sample).to(seg.device, seg.dtype)
    if style is None:
        return G(seg, eps)
    mu, logvar = style
    z = mu if sample == 0 else mu + torch.exp(0.5 * logvar) * eps
    return G(seg, z.expand(seg.shape[0], -1))


def unwrap_condition(G: Any) -> Any:
    """The condition source of a (possibly wrapped) generator."""
    from condgen.networks.discriminator import unwrap

    return unwrap(G).condition


def encode_style(
    gan: Any, image: Image.Image, spec: DataSpec, *, device: str = "cpu"
) -> tuple[Tensor, tuple[Tensor, Tensor]]:
    """A style photo (any size) -> (its (1, 3, H, W) image in [-1, 1], (mu, logvar) from the VAE encoder).

    The photo is resized (bicubic) to the model's size; `generate(..., style=(mu, logvar))` uses the stats.
    """
    h, w = spec.size
    pil = image.convert("RGB").resize((w, h), Image.BICUBIC)
    img = torch.from_numpy(np.asarray(pil).copy()).permute(2, 0, 1).float()[None] / 127.5 - 1
    with torch.no_grad():
        stats = gan.E(img.to(device))
    return img, stats


def _load_maps(
    labels_dir: Path, spec: DataSpec, instances_dir: Path | None, resize: bool = False
) -> tuple[list[str], Tensor, Tensor]:
    files = list_files(labels_dir, LABEL_EXTENSIONS) if labels_dir.is_dir() else []
    if not files:
        raise FileNotFoundError(f"no label maps ({', '.join(LABEL_EXTENSIONS)}) in {labels_dir}")
    h, w = spec.size
    labels, segs, resized = [], [], {}
    for f in files:
        img = read_label(f)
        if fit_size(img.size, (w, h), source=str(f), resize=resize):  # PIL sizes are (W, H)
            resized.setdefault(img.size, []).append(f.name)
            img = img.resize((w, h), Image.NEAREST)  # ids nearest, as the official loader does
        label = torch.from_numpy(np.asarray(img).astype(np.int64))[None, None]
        instance = None
        if spec.instance_edges:
            if instances_dir is None or not (instances_dir / f.name).is_file():
                raise FileNotFoundError(
                    f"{f}: the model uses instance edges; put its instance map at "
                    f"{(instances_dir or Path('<instances>')) / f.name} (--instances DIR)"
                )
            inst = read_instance(instances_dir / f.name).resize((w, h), Image.NEAREST)
            instance = torch.from_numpy(np.asarray(inst).astype(np.int64))[None, None]
        labels.append(label)
        segs.append(encode_seg(label, spec, instance, source=str(f)))
    if resized:
        warnings.warn(resize_summary(resized, (w, h)), ResizeWarning, stacklevel=3)
    return [f.stem for f in files], torch.cat(labels), torch.cat(segs)


def _png(img: Tensor, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    arr = ((img.float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(1, 2, 0).cpu().numpy()
    Image.fromarray(arr).save(path)


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
    source: str | Path,
    labels_dir: str | Path,
    out_dir: str | Path,
    *,
    samples: int = 1,
    resample_class: int | str | None = None,
    style: str | Path | None = None,
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
        samples: images per label map (files `<map>_sNN.png`), each with its own latent (VAE) or noise
            vector (3-D noise) drawn from (seed, map index, sample).
        resample_class: OASIS's local resampling (3-D noise generators): sample 0 is the image with its
            noise; samples 1.. redraw the noise only inside this class's region (a class id, or a name of
            the dataset's `CLASS_NAMES`), so the rest of the image stays as it is. Needs samples >= 2.
        resize: allow label maps of another aspect ratio than the model's (stretched); maps of the same
            ratio and another size are always resized, with one `ResizeWarning` naming the sizes.
    """
    gan, spec, info = load_generator(source, ema=ema, device=device)
    palette = dataset_palette() if palette == "auto" else palette
    kind = latent_kind(gan.G)
    if samples < 1:
        raise ValueError(f"--samples must be >= 1, got {samples}")
    channel = None
    if resample_class is not None:
        if kind != "noise":
            raise ValueError(
                f"{source}: local resampling (--resample_class) needs a generator with 3-D noise (OASIS, "
                "`condition = @NoiseCondition`): new noise inside one region. "
                + ("this one has a VAE latent, one vector for the whole image" if kind else NO_LATENT)
            )
        if samples < 2:
            raise ValueError(
                "--resample_class writes the original (sample 0) and N - 1 resampled versions; "
                "give --samples N >= 2"
            )
        channel = class_channel(resample_class, spec, dataset_attr("CLASS_NAMES"))
    if samples > 1 and kind is None:
        raise ValueError(f"{source}: {NO_LATENT}; --samples > 1 needs a multi-modal model")
    if style is not None and gan.E is None:
        raise ValueError(
            f"{source}: --style needs the VAE style encoder, and this run has none (use_vae = False)"
        )
    names, labels, segs = _load_maps(Path(labels_dir), spec, Path(instances_dir) if instances_dir else None,
                                     resize=resize)
    style_img, style_stats = None, None
    if style is not None:
        style_img, style_stats = encode_style(gan, read_image(style), spec, device=device)
    out = Path(out_dir)
    images = out / "images"
    label_rgb = colorize(labels, palette)
    fakes: list[list[Tensor]] = [[] for _ in names]
    for start in range(0, len(names), batch_size):
        idx = list(range(start, min(start + batch_size, len(names))))
        seg = segs[idx].to(device)
        for k in range(samples):
            if channel is not None and k > 0:
                fake = _local(gan, seg, idx, seed=seed, sample=k, channel=channel).cpu()
            else:
                fake = generate(gan, seg, idx, seed=seed, sample=k, style=style_stats).cpu()
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
        **info,
        "labels": str(labels_dir),
        "maps": len(names),
        "samples": samples,
        "latent": {"vae": "VAE z", "noise": "3-D noise"}.get(kind, "none (label map only)"),
        "resample_class": None
        if channel is None
        else {
            "id": channel,
            "name": _name(dataset_attr("CLASS_NAMES"), channel),
            "maps_without_it": [
                n for n, lab in zip(names, labels, strict=True) if not (lab == channel).any()
            ],
            "how": "sample 0: the map's noise; sample k: noise k inside the class's region only",
        },
        "seed": seed,
        "style": str(style) if style else None,
        "size": list(spec.size),
        "files": files,
    }
    (out / "synthesis.json").write_text(json.dumps(record, indent=1) + "\n")
    return record


def _name(names: Any, c: int) -> str | None:
    names = tuple(names or ())
    return names[c] if c < len(names) else None


def _local(gan: Any, seg: Tensor, idx: list[int], *, seed: int, sample: int, channel: int) -> Tensor:
    """Local resampling: sample 0's noise everywhere, sample `sample`'s noise inside `channel`'s region."""
    from condgen.eval.resample import local_resample

    z_dim = unwrap_condition(gan.G).z_dim
    z0 = latents(z_dim, idx, seed=seed, sample=0).to(seg.device, seg.dtype)
    zk = latents(z_dim, idx, seed=seed, sample=sample).to(seg.device, seg.dtype)
    return local_resample(gan.G, seg, z0, channel, new_z=zk)[0]


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
