"""What the painter's server does, without the web: load a run, read and check label maps, synthesize.

`PaintModel(run)` holds one `SynthesisPipeline` (a run directory, checkpoint folder, converted official
checkpoint, `save_pretrained` folder or a pipeline already loaded). Label maps go through the same code as
`condgen synthesize`: `pipe.encode` turns the id map into the generator's input and `pipe.generate` draws
the latent from (seed, 0, sample), so the painter and the batch script give the same image for the same map
and seed. Every problem with an input raises `InputError` with a message for the user and an HTTP status.
"""

from __future__ import annotations

import base64
import hashlib
import io
import threading
import time
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from condgen.infer.latents import to_uint8_image
from condgen.infer.pipeline import SynthesisPipeline
from condgen.paint.classes import class_table
from condgen.rundir import LATEST_FILE, CheckpointError, latest_checkpoint

MAX_BYTES = 16 * 2**20  # uploads larger than this are refused (413)
MAX_PIXELS = 4096 * 4096  # decoded images larger than this are refused before decoding (413)
MAX_SAMPLES = 8
N_EXAMPLES = 8
STYLE_CACHE = 16
# Uploads are decoded and converted to ids on these two threads only: a 4096 x 4096 map takes ~50 MB while it
# is converted, and the C allocator keeps what each thread freed for that thread's next use, so decoding on
# every server thread (a semaphore alone) still let 20 concurrent uploads grow the server by ~650 MB.
DECODER = ThreadPoolExecutor(max_workers=2, thread_name_prefix="condgen-decode")


class InputError(ValueError):
    """A bad request: `status` is the HTTP code (400 bad input, 404 unknown name, 413 too large, ...)."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


def declared_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) from a PNG's IHDR chunk (bytes 16-24), None for other formats: read before PIL
    parses anything, so a huge declared image is refused without being decoded."""
    if len(data) >= 24 and data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR":
        return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    return None


def _check_pixels(what: str, w: int, h: int, size: tuple[int, int] | None) -> None:
    if w * h > MAX_PIXELS:
        raise InputError(f"{what}: {w}x{h} pixels is over the limit of {MAX_PIXELS} pixels", 413)
    if size is not None and (h, w) != tuple(size):
        raise InputError(
            f"{what}: {w}x{h} pixels, but this model paints {size[1]}x{size[0]}; "
            "resize it (nearest) or upload it through /labels, which does"
        )


def open_png(
    data: bytes,
    what: str = "label map",
    formats: tuple[str, ...] = ("PNG",),
    size: tuple[int, int] | None = None,
) -> Image.Image:
    """Decode uploaded bytes, refusing non-images, other formats and oversized images with `InputError`.

    The declared size is checked before any pixel is decoded (a 16 KB PNG can declare 4096 x 4096 pixels);
    `size` (H, W): refuse other sizes before decoding too.
    """
    if not data:
        raise InputError(f"{what}: the request has no body; send the {' or '.join(formats)} file itself")
    if len(data) > MAX_BYTES:
        mib = len(data) / 2**20
        raise InputError(f"{what}: {mib:.1f} MiB is over the {MAX_BYTES // 2**20} MiB limit", 413)
    header = declared_size(data)
    if header is not None:
        _check_pixels(what, *header, size)
    try:
        img = Image.open(io.BytesIO(data))
    except Image.DecompressionBombError as err:  # not an OSError; other formats' sizes are only known here
        raise InputError(f"{what}: an image too large to decode ({err})", 413) from None
    except (UnidentifiedImageError, OSError, ValueError):
        raise InputError(f"{what}: not a {' or '.join(formats)} image", 415) from None
    if img.format not in formats:
        lossless = " (label maps must be lossless: JPEG changes the ids at every edge)"
        hint = lossless if img.format == "JPEG" else ""
        raise InputError(f"{what}: a {img.format} file, expected {' or '.join(formats)}{hint}", 415)
    _check_pixels(what, *img.size, size)
    try:
        img.load()
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as err:
        raise InputError(f"{what}: corrupt {img.format} file ({err})", 400) from None
    return img


def png_bytes(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()


def data_url(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode()


class PaintModel:
    """A loaded run plus everything the page needs: classes, examples, label decoding, synthesis, styles.

    Args:
        run: run directory, step_<N> checkpoint folder or converted official folder.
        ema: use the run's EMA generator.
        examples: a folder of label-id PNGs to offer as starting points (default `<run>/examples/` when it
            exists; the synthetic landscapes also offer generated scenes).
    """

    def __init__(
        self,
        run: str | Path | SynthesisPipeline,
        *,
        ema: bool = False,
        device: str = "cpu",
        examples: str | Path | None = None,
    ) -> None:
        self.device, self.ema = device, ema
        self.lock = threading.Lock()  # one synthesis at a time: the networks are shared
        self.styles: OrderedDict[str, tuple[torch.Tensor, torch.Tensor]] = OrderedDict()
        if isinstance(run, SynthesisPipeline):
            self._serve(run)
        else:
            self._serve(SynthesisPipeline.from_pretrained(run, ema=ema, device=device))
        self.run = Path(str(self.pipe.provenance.get("source")))
        self.dataset = self.pipe.dataset.name
        self.classes = class_table(self.pipe.dataset)
        self.n_ids = len(self.classes)
        folder = Path(examples) if examples is not None else self.run / "examples"
        self._example_files = (
            {p.stem: p for p in sorted(folder.glob("*.png"))} if folder.is_dir() else {}
        )
        self._landscape_examples = self.dataset == "SyntheticLandscapes"
        self.last_labels: np.ndarray | None = None  # the id map of the latest /synthesize (for tests)

    def _serve(self, pipe: SynthesisPipeline) -> None:
        self.pipe = pipe
        self.device = pipe.device
        self.gan, self.spec, self.info = pipe.gan, pipe.spec, pipe.provenance
        self.multimodal = pipe.latent.multimodal  # a VAE z or 3-D noise (OASIS)
        self.has_encoder = pipe.E is not None

    # ----- a run still training
    def newer_checkpoint(self) -> Path | None:
        """The run's newest checkpoint when it is not the one served (a run still training wrote another);
        None when serving a step_<N> folder, which never changes."""
        if not (self.run / LATEST_FILE).is_file():
            return None
        latest = latest_checkpoint(self.run)
        if latest is None or latest.resolve() == Path(self.info["checkpoint"]).resolve():
            return None
        return latest

    def reload(self) -> dict[str, Any]:
        """Serve the run's newest checkpoint if it changed since loading: {'reloaded', 'step', 'checkpoint'}.

        A run keeps its data spec, so a checkpoint with another one is another model: refused (409), and the
        served one stays. Encoded styles are dropped (the encoder changed)."""
        newer = self.newer_checkpoint()
        if newer is not None:
            try:
                pipe = SynthesisPipeline.from_run(newer, ema=self.ema, device=self.device)
            except (FileNotFoundError, KeyError, ValueError, CheckpointError) as err:
                raise InputError(f"cannot reload {newer}: {err}", 409) from None
            if pipe.spec != self.spec:
                raise InputError(f"{newer} is not the model being served (its data spec differs)", 409)
            pipe.provenance["source"] = str(self.run)
            with self.lock:
                self._serve(pipe)
                self.styles.clear()
        return {"reloaded": newer is not None, "step": self.info.get("step"),
                "checkpoint": self.info.get("checkpoint")}

    # ----- what the page shows
    @property
    def size(self) -> tuple[int, int]:
        return self.spec.size

    def describe(self) -> dict[str, Any]:
        h, w = self.size
        groups: list[str] = []
        for c in self.classes:
            if c.group not in groups:
                groups.append(c.group)
        return {
            "run": str(self.run),
            "kind": self.info.get("kind"),
            "step": self.info.get("step"),
            "dataset": self.dataset,
            "width": w,
            "height": h,
            "label_nc": self.spec.label_nc,
            "dontcare": self.spec.label_nc if self.spec.contain_dontcare_label else None,
            "instance_edges": self.spec.instance_edges,
            "multimodal": self.multimodal,
            "style_encoder": self.has_encoder,
            "max_samples": MAX_SAMPLES if self.multimodal else 1,
            "groups": groups,
            "classes": [asdict(c) for c in self.classes],
        }

    def example_names(self) -> list[str]:
        names = [f"landscape_{i}" for i in range(N_EXAMPLES)] if self._landscape_examples else []
        return names + list(self._example_files)

    def example(self, name: str) -> dict[str, np.ndarray]:
        """{'label': (H, W) ids at the model's size, and 'image' (H, W, 3) where the example has a photo}."""
        h, w = self.size
        if self._landscape_examples and name.startswith("landscape_") and name[10:].isdigit():
            i = int(name[10:])
            if i < N_EXAMPLES:
                from condgen.data.landscapes import landscape

                scene = landscape(0, i, h, w, split="val")
                return {"label": scene["label"], "image": scene["image"]}
        if name in self._example_files:  # only names listed from the folder: no path comes from the request
            data = self._example_files[name].read_bytes()
            ids, _ = self.decode_labels(data, kind="ids", resize=True, what=f"example {name}")
            return {"label": ids}
        raise InputError(f"no example named {name!r}; GET /examples lists them", 404)

    # ----- label maps
    def palette_lookup(self) -> dict[tuple[int, int, int], int]:
        table: dict[tuple[int, int, int], int] = {}
        for c in self.classes:
            table.setdefault(tuple(c.color), c.id)
        return table

    def colorize(self, ids: np.ndarray) -> np.ndarray:
        colors = np.array([c.color for c in self.classes], dtype=np.uint8)
        return colors[np.clip(ids, 0, len(colors) - 1)]

    def decode_labels(
        self, data: bytes, *, kind: str = "ids", resize: bool = False, what: str = "label map"
    ) -> tuple[np.ndarray, str | None]:
        """PNG bytes -> ((H, W) uint8/int ids at the model's size, a note for the user or None).

        kind='ids': one id per pixel (mode L/P/I/1, or grey RGB(A) as a browser canvas writes it; 255 is
        don't care where the model has that channel). kind='color': a colour visualisation, mapped back
        through the palette. `resize`: other sizes are resized (nearest) to the model's, else refused.
        """
        return DECODER.submit(self._decode_labels, data, kind, resize, what).result()

    def _decode_labels(
        self, data: bytes, kind: str, resize: bool, what: str
    ) -> tuple[np.ndarray, str | None]:
        h, w = self.size
        img = open_png(data, what, size=None if resize else (h, w))
        note = None
        if kind == "color":
            rgba = np.asarray(img.convert("RGBA"))
            if (rgba[..., 3] < 255).any():
                raise InputError(f"{what}: the colour map has transparent pixels; paint every pixel")
            ids = self._colors_to_ids(rgba[..., :3], what)
        elif kind == "ids":
            ids = self._image_ids(img, what)
        else:
            raise InputError(f"unknown label kind {kind!r}; use 'ids' or 'color'")
        del img
        if ids.shape != (h, w):
            note = f"resized from {ids.shape[1]}x{ids.shape[0]} to {w}x{h} (nearest)"
            small = ids if ids.dtype == np.uint8 else ids.astype(np.int32)  # modes L and I
            ids = np.asarray(Image.fromarray(small).resize((w, h), Image.NEAREST))
        self.check_ids(ids, what)
        return ids.astype(self.id_dtype, copy=False), note

    @property
    def id_dtype(self) -> type:
        """The smallest dtype holding every id of this model (don't care included)."""
        return np.uint8 if self.n_ids <= 256 else np.int32

    def _image_ids(self, img: Image.Image, what: str) -> np.ndarray:
        # ids stay in the image's own dtype (uint8 for 8-bit maps) or the model's id dtype: never int64
        # copies, which made a 4096 x 4096 upload cost ~250 MB
        if img.mode in ("L", "P"):
            ids = np.asarray(img)
        elif img.mode == "1":
            ids = np.asarray(img).astype(np.uint8)
        elif img.mode in ("I", "I;16", "I;16B", "I;16L"):
            ids = np.asarray(img)
        elif img.mode in ("RGB", "RGBA", "LA"):
            arr = np.asarray(img.convert("RGBA"))
            grey = (arr[..., 0] == arr[..., 1]).all() and (arr[..., 1] == arr[..., 2]).all()
            if not grey or (arr[..., 3] < 255).any():
                raise InputError(
                    f"{what}: an {img.mode} image with colours, not one class id per pixel; if it is a "
                    "colour visualisation, open it as a colour map (kind=color) to map its colours to ids"
                )
            ids = arr[..., 0].copy()
            del arr
        else:
            raise InputError(f"{what}: PIL mode {img.mode!r}; save the ids as an 8-bit single-channel PNG")
        if self.spec.contain_dontcare_label:
            dontcare = ids == 255
            if dontcare.any():
                if self.spec.label_nc > np.iinfo(ids.dtype).max:
                    ids = ids.astype(np.int32)
                ids = ids.copy() if not ids.flags.writeable else ids
                ids[dontcare] = self.spec.label_nc
        return ids

    def _colors_to_ids(self, rgb: np.ndarray, what: str) -> np.ndarray:
        # Row blocks looked up in the sorted palette: memory stays a few MB above the image's own, where
        # np.unique(..., return_inverse=True) over a 4096 x 4096 map took ~300 MB.
        table = self.palette_lookup()
        keys = np.array(sorted((r << 16) | (g << 8) | b for r, g, b in table), np.uint32)
        values = np.array([table[(k >> 16, (k >> 8) & 255, k & 255)] for k in keys.tolist()], self.id_dtype)
        ids = np.empty(rgb.shape[:2], self.id_dtype)
        unknown: dict[int, int] = {}
        for top in range(0, rgb.shape[0], 256):
            block = rgb[top : top + 256].astype(np.uint32)
            key = (block[..., 0] << 16) | (block[..., 1] << 8) | block[..., 2]
            pos = np.searchsorted(keys, key).clip(max=len(keys) - 1)
            ids[top : top + 256] = values[pos]
            found = keys[pos] == key
            if not found.all():
                colours, counts = np.unique(key[~found], return_counts=True)
                for c, n in zip(colours.tolist(), counts.tolist(), strict=True):
                    unknown[c] = unknown.get(c, 0) + n
        if unknown:
            listed = [(c >> 16, (c >> 8) & 255, c & 255) for c in sorted(unknown)]
            shown = ", ".join(f"rgb{c}" for c in listed[:5]) + (" ..." if len(listed) > 5 else "")
            raise InputError(
                f"{what}: {len(listed)} colour(s) are not in this model's palette ({shown}; "
                f"{sum(unknown.values())} pixels). A colour map must use exactly the palette colours "
                "(no antialiasing, no JPEG); or open an id map instead"
            )
        return ids

    def check_ids(self, ids: np.ndarray, what: str = "label map") -> None:
        if ids.size and 0 <= ids.min() and ids.max() < self.n_ids:  # the usual case, without masks
            return
        bad = np.unique(ids[(ids < 0) | (ids >= self.n_ids)])
        if len(bad):
            dontcare = " and 255 (don't care)" if self.spec.contain_dontcare_label else ""
            allowed = f"0..{self.n_ids - 1}{dontcare}"
            shown = ", ".join(str(int(b)) for b in bad[:10]) + (" ..." if len(bad) > 10 else "")
            raise InputError(f"{what}: unknown class ids {shown}; this model knows {allowed}")

    def id_png(self, ids: np.ndarray) -> bytes:
        """A single-channel PNG of the ids (don't care as 255), as experiments/synthesize.py reads them."""
        out = ids.astype(np.int64)
        if self.spec.contain_dontcare_label:
            out = np.where(out == self.spec.label_nc, 255, out)
        return png_bytes(out.astype(np.uint8))

    def color_png(self, ids: np.ndarray) -> bytes:
        return png_bytes(self.colorize(ids))

    # ----- styles
    def add_style(self, data: bytes) -> dict[str, Any]:
        """Encode a style photo with the VAE encoder; returns its key for /synthesize and a preview."""
        from condgen.infer.latents import encode_style

        if not self.has_encoder:
            raise InputError(
                f"{self.run}: this model has no VAE style encoder (use_vae = False), so it cannot take a "
                "style image", 409
            )
        formats = ("PNG", "JPEG", "WEBP", "BMP")
        img = DECODER.submit(open_png, data, "style image", formats).result()
        key = hashlib.sha256(data).hexdigest()[:16]
        with self.lock:
            resized, stats = encode_style(self.gan, img, self.spec, device=self.device)
        self.styles[key] = (stats[0].detach(), stats[1].detach())
        self.styles.move_to_end(key)
        while len(self.styles) > STYLE_CACHE:
            self.styles.popitem(last=False)
        return {"style": key, "preview": data_url(png_bytes(to_uint8_image(resized[0])))}

    # ----- synthesis
    def synthesize(
        self, ids: np.ndarray, *, seed: int = 0, samples: int = 1, style: str | None = None
    ) -> dict[str, Any]:
        """Images for one id map: `samples` latents from (seed, 0, k), or the style's posterior (sample 0 its
        mean). Returns {'images': [(H, W, 3) uint8], 'ms': [milliseconds per image], ...}."""
        h, w = self.size
        if ids.shape != (h, w):
            raise InputError(f"label map: {ids.shape[1]}x{ids.shape[0]} pixels, this model paints {w}x{h}")
        self.check_ids(ids)
        if not 1 <= samples <= MAX_SAMPLES:
            raise InputError(f"samples must be 1..{MAX_SAMPLES}, got {samples}")
        if samples > 1 and not self.multimodal:
            raise InputError(
                "this generator takes no latent (no VAE, no 3-D noise): every sample would be the same; "
                "use samples = 1"
            )
        if not 0 <= seed < 2**63:
            raise InputError(f"seed must be 0..2**63-1, got {seed}")
        stats = None
        if style:
            if not self.has_encoder:
                raise InputError("this model has no VAE style encoder, so it cannot take a style image", 409)
            if style not in self.styles:
                raise InputError(
                    f"unknown style {style!r} (styles expire; upload the image again via /style)", 404
                )
            stats = self.styles[style]
        label = torch.from_numpy(ids.astype(np.int64))[None, None]
        # the painter has no instance map: each class region is its own instance (edges at class borders)
        instance = label if self.spec.instance_edges else None
        self.last_labels = ids.copy()
        images, ms = [], []
        with self.lock:
            seg = self.pipe.encode(label, instance, source="painted label map")
            for k in range(samples):
                start = time.perf_counter()
                fake = self.pipe.generate(seg, [0], seed=seed, sample=k, style=stats)[0].cpu()
                ms.append((time.perf_counter() - start) * 1000)
                images.append(to_uint8_image(fake))
        return {"images": images, "ms": ms, "seed": seed, "samples": samples, "style": style}
