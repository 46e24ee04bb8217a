"""Synthetic landscapes: the embedded default dataset, procedural label maps with matching rendered photos.

Layout (labels): a horizon, up to three mountain ranges with ridged profiles and snow caps, clouds, a sea
or a lake with a beach, a conifer tree line, tree clusters and boulders, all from smooth value noise laid
out in image-relative units, so one `(seed, index)` gives the same scene at any resolution of one aspect.
Photo: each class has its own texture (palette, frequency, orientation: vertical grass blades, horizontal
water ripples, diagonal sand ripples and mountain strata, isotropic rock cracks, ...), lit by a global
per-image `Style` (time of day -> colour temperature, brightness and sky colours; haze; sun position)
drawn from a random stream independent of the layout: the labels do not determine it, so recovering it
takes a style encoder (SPADE's VAE), while a generator that ignores the labels cannot place the textures.
numpy only; a 64x64 item takes a few ms.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from condgen.data.spec import DataSpec
from condgen.registry import register

CLASSES: tuple[str, ...] = ("sky", "cloud", "mountain", "snow", "rock", "forest", "grass", "sand", "water")
SKY, CLOUD, MOUNTAIN, SNOW, ROCK, FOREST, GRASS, SAND, WATER = range(len(CLASSES))
# Colours for colourised label maps (visualize.colorize), one per class id.
PALETTE: tuple[tuple[int, int, int], ...] = (
    (110, 170, 240), (235, 235, 245), (120, 100, 140), (255, 255, 255), (130, 90, 60),
    (20, 100, 40), (130, 210, 80), (240, 210, 140), (30, 80, 200),
)  # fmt: skip
_SPLIT_STREAM = {"train": 0, "val": 1, "test": 1}


# ----- noise (value noise: random control values, smoothstep-interpolated to pixel centres)
@lru_cache(maxsize=512)
def _taps(n_out: int, n_in: int) -> tuple[np.ndarray, np.ndarray]:
    """For n_out pixel centres on a curve through n_in points spanning [0, 1]: left point and its weight."""
    pos = (np.arange(n_out) + 0.5) / n_out * (n_in - 1)
    i0 = np.minimum(pos.astype(np.int64), n_in - 2)
    f = (pos - i0).astype(np.float32)
    return i0, (f * f * (3 - 2 * f))[:, None]


def _resample(grid: np.ndarray, n_out: int) -> np.ndarray:
    """Interpolate the rows of `grid` (n_in, k) to (n_out, k)."""
    i0, f = _taps(n_out, grid.shape[0])
    return grid[i0] * (1 - f) + grid[i0 + 1] * f


def _noise(rng: np.random.Generator, h: int, w: int, gy: int, gx: int) -> np.ndarray:
    """(h, w) smooth noise in [0, 1] through a (gy, gx) grid of random control values."""
    grid = rng.random((max(2, gy), max(2, gx)), dtype=np.float32)
    return _resample(_resample(grid, h).T, w).T


def _fbm(rng: np.random.Generator, h: int, w: int, gy: int, gx: int, octaves: int = 3) -> np.ndarray:
    """Fractal noise, zero-centred, roughly in [-1, 1]: octaves of `_noise` at doubling grid sizes."""
    out = np.zeros((h, w), np.float32)
    total = 0.0
    for o in range(octaves):
        amp = 0.5**o
        out += amp * _noise(rng, h, w, gy * 2**o, gx * 2**o)
        total += amp
    return (out / total - 0.5) * 2


def _curve(rng: np.random.Generator, w: int, g: int, octaves: int = 1) -> np.ndarray:
    """(1, w) smooth random curve in [0, 1]."""
    out = np.zeros((1, w), np.float32)
    total = 0.0
    for o in range(octaves):
        amp = 0.5**o
        out += amp * _resample(rng.random((max(2, g * 2**o), 1), dtype=np.float32), w).T
        total += amp
    return out / total


def _textured(rng: np.random.Generator, h: int, w: int, period_y: float, period_x: float) -> np.ndarray:
    """Zero-centred noise with features of `period_y` x `period_x` pixels: sets frequency and orientation."""
    return (_noise(rng, h, w, round(h / period_y) + 1, round(w / period_x) + 1) - 0.5) * 2


# ----- layout
def make_layout(rng: np.random.Generator, h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    """Random smooth layout: (label ids (h, w) uint8, instance ids (h, w) int32).

    Every random draw has a size independent of (h, w) for a given aspect ratio, so the scene is the same at
    any resolution. Units: y in [0, 1] top to bottom, x in [0, aspect] (one unit = image height).
    """
    a = w / h
    y = ((np.arange(h, dtype=np.float32) + 0.5) / h)[:, None]
    x = ((np.arange(w, dtype=np.float32) + 0.5) / w)[None, :] * a
    ga = max(1, round(a))  # horizontal control points scale with the aspect ratio
    inst = np.zeros((h, w), np.int32)
    next_id = [16]  # instance ids: class id for stuff, 16, 17, ... for painted objects

    def paint(mask: np.ndarray, cls: int, new_instance: bool = True) -> None:
        label[mask] = cls
        inst[mask] = next_id[0] if new_instance else cls
        next_id[0] += int(new_instance)

    horizon = rng.uniform(0.4, 0.64) + rng.uniform(-0.05, 0.05) * (x - a / 2) / a
    horizon = horizon + 0.03 * (_curve(rng, w, 5 * ga) - 0.5)
    ground = int(rng.choice([GRASS, SAND, SNOW], p=[0.6, 0.2, 0.2]))
    below = y >= horizon
    label = np.where(below, ground, SKY).astype(np.uint8)
    inst[:] = label

    # water: a sea band under the horizon or a lake, with an optional beach
    if rng.random() < 0.6:
        if rng.random() < 0.35:
            shore = (
                horizon + rng.uniform(0.1, 0.35) * (1 - horizon) + 0.06 * (_curve(rng, w, 4 * ga, 2) - 0.5)
            )
            dist = (y - horizon) / (shore - horizon)
        else:
            cx, cy = rng.uniform(0.15, 0.85) * a, rng.uniform(0.2, 0.65)
            cy = float(horizon.mean() + cy * (1 - horizon.mean()))
            rx = rng.uniform(0.2, 0.5) * a**0.5
            ry = rx * rng.uniform(0.2, 0.35)
            dist = np.sqrt(((x - cx) / rx) ** 2 + ((y - cy) / ry) ** 2)
            dist = dist + 0.25 * _fbm(rng, h, w, 4, 4 * ga)
        beach = rng.uniform(0.15, 0.5) if (rng.random() < 0.6 and ground != SAND) else 0.0
        paint(below & (dist < 1), WATER)
        paint(below & (dist >= 1) & (dist < 1 + beach) & (label == ground), SAND)

    # mountain ranges, far to near; the nearest may be bare rock; snow caps above a ragged snow line
    n_ranges = int(rng.choice([0, 1, 2, 3], p=[0.15, 0.35, 0.35, 0.15]))
    snowy = rng.random() < (0.85 if ground == SNOW else 0.4)
    for k in range(n_ranges):
        height = rng.uniform(0.12, 0.4) * (1 - 0.22 * k)
        ridge = 1 - np.abs(2 * _curve(rng, w, (2 + k) * ga, 4) - 1)  # ridged: sharp peaks, round valleys
        profile = 0.2 + 0.8 * ridge**1.3
        if rng.random() < 0.45:  # a range that covers only part of the view
            lo, hi = sorted(rng.uniform(0, a, 2))
            soft = 0.15 * a
            profile = profile * np.clip(np.minimum(x - lo + soft, hi - x + soft) / soft, 0, 1)
        top = horizon - height * profile
        cls = ROCK if (k == n_ranges - 1 and k > 0 and rng.random() < 0.4) else MOUNTAIN
        body = (y >= top) & (y < horizon) & (profile > 0.02)
        paint(body, cls)
        if snowy and cls == MOUNTAIN:
            line = horizon - height * (rng.uniform(0.55, 0.85) + 0.12 * (_curve(rng, w, 12 * ga) - 0.5))
            paint(body & (y < line), SNOW, new_instance=False)

    # clouds in the remaining sky, denser towards the top
    if rng.random() < 0.8:
        cover = rng.uniform(0.05, 0.4)
        field = _fbm(rng, h, w, 6, 3 * ga, 3) + 0.5 * (0.5 - y)
        sky = label == SKY
        if sky.any():
            paint(sky & (field > np.quantile(field[sky], 1 - cover)), CLOUD, new_instance=False)

    # conifer tree line along the horizon: a row of narrow triangles
    if rng.random() < 0.5:
        n = int(rng.integers(25, 60)) * ga
        xi = rng.uniform(0, a, n).astype(np.float32)[:, None]
        hi = rng.uniform(0.02, 0.07, n).astype(np.float32)[:, None]
        wi = hi * rng.uniform(0.25, 0.45, n).astype(np.float32)[:, None]
        crown = np.max(hi * np.clip(1 - np.abs(x[0] - xi) / wi, 0, None), axis=0)[None]
        lo, hi_ = sorted(rng.uniform(-0.3, 1.3, 2) * a)
        depth = rng.uniform(0.005, 0.05)
        inside = (x >= lo) & (x <= hi_) & (crown > 0)
        band = inside & (y >= horizon - crown) & (y < horizon + depth) & (label != WATER)
        paint(band, FOREST)

    # tree clusters on the ground
    if rng.random() < 0.6:
        field = _fbm(rng, h, w, 3, 4 * ga, 3)
        land = (label == ground) & (y > horizon + 0.02)
        if land.any():
            paint(land & (field > np.quantile(field[land], 1 - rng.uniform(0.08, 0.35))), FOREST)

    # boulders, larger towards the viewer, with flat bottoms
    for _ in range(int(rng.poisson(1.3))):
        hz = float(horizon.mean())
        cy = rng.uniform(hz + 0.08, 1.05)
        size = 0.02 + 0.12 * (cy - hz) / (1 - hz)
        cx, rx, ry = rng.uniform(0, a), size * rng.uniform(0.9, 1.7), size * rng.uniform(0.5, 0.8)
        wobble = 0.2 * (_curve(rng, w, 10 * ga) - 0.5)
        rock = (((x - cx) / rx) ** 2 + ((y - cy) / ry) ** 2 < 1 + wobble) & (y < cy + 0.4 * ry)
        paint(rock, ROCK)
    return label, inst


# ----- style and rendering
@dataclass(frozen=True)
class Style:
    """Global photo style, independent of the layout.

    Args:
        daylight: 0 night, ~0.2 dusk, ~0.4 golden hour, 1 noon; sets light colour, exposure and sky.
        warmth: colour-temperature shift (> 0 warmer/redder, < 0 colder/bluer).
        haze: aerial-perspective strength, 0..1.
        sun_x: horizontal sun position (fraction of the width): sun glow and the glitter on water.
        saturation: colour saturation multiplier.
    """

    daylight: float
    warmth: float
    haze: float
    sun_x: float
    saturation: float


def sample_style(rng: np.random.Generator) -> Style:
    return Style(
        daylight=float(rng.uniform(0, 1) ** 0.7),  # more day than night
        warmth=float(np.clip(rng.normal(0, 0.4), -1, 1)),
        haze=float(rng.uniform(0, 0.7)),
        sun_x=float(rng.uniform(0.05, 0.95)),
        saturation=float(rng.uniform(0.75, 1.2)),
    )


# Key frames over daylight: light colour, exposure, zenith and horizon sky colours.
_DAYLIGHT = np.array([0.0, 0.2, 0.4, 0.7, 1.0])
_LIGHT = np.array([(0.3, 0.36, 0.6), (0.95, 0.68, 0.6), (1.0, 0.86, 0.7), (1.0, 0.97, 0.92), (1.0, 1.0, 1.0)])
_EXPOSURE = np.array([0.3, 0.62, 0.85, 0.97, 1.05])
_ZENITH = np.array([(0.01, 0.02, 0.08), (0.16, 0.15, 0.38), (0.28, 0.42, 0.72), (0.22, 0.45, 0.85),
                    (0.2, 0.45, 0.9)])  # fmt: skip
_HORIZON = np.array([(0.05, 0.07, 0.17), (0.98, 0.52, 0.32), (1.0, 0.78, 0.52), (0.72, 0.84, 0.97),
                     (0.7, 0.85, 1.0)])  # fmt: skip
# Per-class albedo (RGB, 0..1).
_ALBEDO = {
    CLOUD: (0.97, 0.97, 1.0), MOUNTAIN: (0.42, 0.44, 0.56), SNOW: (1.0, 1.0, 1.0), ROCK: (0.46, 0.38, 0.31),
    FOREST: (0.08, 0.25, 0.1), GRASS: (0.4, 0.6, 0.19), SAND: (0.86, 0.7, 0.45), WATER: (0.07, 0.24, 0.38),
}  # fmt: skip


def _keyframe(table: np.ndarray, d: float) -> np.ndarray:
    if table.ndim == 1:
        return np.float32(np.interp(d, _DAYLIGHT, table))
    return np.array([np.interp(d, _DAYLIGHT, table[:, c]) for c in range(3)], np.float32)


def render(label: np.ndarray, style: Style, rng: np.random.Generator) -> np.ndarray:
    """Photo for `label` under `style`: (h, w, 3) uint8. `rng` draws the texture detail."""
    h, w = label.shape
    y = ((np.arange(h, dtype=np.float32) + 0.5) / h)[:, None]
    x = ((np.arange(w, dtype=np.float32) + 0.5) / w)[None, :]
    s = max(1.0, min(h, w) / 64) ** 0.5  # texture periods grow slowly with resolution
    tint = np.array([np.exp(0.25 * style.warmth), 1.0, np.exp(-0.25 * style.warmth)], np.float32)
    light = _keyframe(_LIGHT, style.daylight) * _keyframe(_EXPOSURE, style.daylight) * tint
    zenith, horizon_col = (
        _keyframe(_ZENITH, style.daylight) * tint,
        _keyframe(_HORIZON, style.daylight) * tint,
    )
    ground_rows = np.nonzero((label != SKY) & (label != CLOUD))
    hz = float(ground_rows[0].min()) / h if ground_rows[0].size else 1.0  # highest non-sky row

    img = np.zeros((h, w, 3), np.float32)
    present = set(np.unique(label).tolist())

    def put(cls: int, colour: np.ndarray) -> None:
        mask = label == cls
        img[mask] = colour[mask] if colour.ndim == 3 else colour

    def shade(cls: int, pattern: np.ndarray) -> np.ndarray:
        return np.asarray(_ALBEDO[cls], np.float32) * pattern[..., None] * light

    sky_t = np.clip(y / max(hz, 0.05), 0, 1) ** 1.6
    sky = zenith + (horizon_col - zenith) * sky_t[..., None]
    glow = np.exp(-(((x - style.sun_x) * 2.5) ** 2) - ((y - hz) * 4) ** 2)[..., None]
    sky = sky + (1.0 - style.daylight) * 0.5 * glow * light
    if SKY in present:
        stars = (rng.random((h, w), dtype=np.float32) > 0.993) * max(0.0, 0.6 - 3 * style.daylight)
        put(SKY, np.broadcast_to(sky + stars[..., None], (h, w, 3)))
    if CLOUD in present:  # soft, horizontally elongated puffs, tinted by the sky near the horizon
        puff = 0.78 + 0.22 * _textured(rng, h, w, 5 * s, 14 * s)
        cloud = shade(CLOUD, puff) * 0.8 + 0.35 * sky
        put(CLOUD, cloud)
    if MOUNTAIN in present:  # blue-grey with diagonal strata
        theta = rng.uniform(0.45, 0.8) * rng.choice([-1, 1])
        u = (x * w * np.cos(theta) + y * h * np.sin(theta)) / (5 * s)
        strata = np.sin(2 * np.pi * u + 2.5 * _textured(rng, h, w, 12 * s, 12 * s))
        put(MOUNTAIN, shade(MOUNTAIN, 0.78 + 0.12 * strata + 0.12 * _textured(rng, h, w, 8 * s, 8 * s)))
    if SNOW in present:  # bright, smooth, faint large-scale drifts
        put(SNOW, shade(SNOW, 0.9 + 0.06 * _textured(rng, h, w, 10 * s, 16 * s)))
    if ROCK in present:  # warm grey-brown, isotropic high-frequency cracks and speckle
        grain = _textured(rng, h, w, 2.5 * s, 2.5 * s)
        cracks = (np.abs(_textured(rng, h, w, 4 * s, 4 * s)) < 0.12) * 0.35
        speckle = 0.1 * (rng.random((h, w), dtype=np.float32) - 0.5)
        put(ROCK, shade(ROCK, 0.8 + 0.25 * grain - cracks + speckle))
    if FOREST in present:  # dark green, vertical trunks and canopy blobs
        trunks = _textured(rng, h, w, 9 * s, 1.6 * s)
        canopy = _textured(rng, h, w, 3 * s, 3 * s)
        put(FOREST, shade(FOREST, 0.85 + 0.35 * trunks + 0.2 * canopy))
    if GRASS in present:  # yellow-green fine vertical blades over soft patches
        blades = _textured(rng, h, w, 4 * s, 1.2 * s)
        patches = _textured(rng, h, w, 20 * s, 20 * s)
        put(GRASS, shade(GRASS, 0.85 + 0.2 * blades + 0.12 * patches))
    if SAND in present:  # pale beige, diagonal ripples and grain
        u = (x * w * 0.94 - y * h * 0.34) / (4 * s)
        ripples = np.sin(2 * np.pi * u + 2 * _textured(rng, h, w, 10 * s, 10 * s))
        grain = 0.07 * (rng.random((h, w), dtype=np.float32) - 0.5)
        put(SAND, shade(SAND, 0.9 + 0.07 * ripples + grain))
    if WATER in present:  # sky reflection, horizontal ripples, glitter under the sun
        ripples = _textured(rng, h, w, 1.3 * s, 10 * s)
        reflection = (0.3 * horizon_col + 0.25 * zenith) * (0.9 + 0.1 * ripples[..., None])
        water = shade(WATER, 0.85 + 0.25 * ripples) + reflection
        glitter = np.exp(-(((x - style.sun_x) * 6) ** 2)) * np.clip(ripples, 0, None) ** 2
        put(WATER, water + (0.6 * glitter)[..., None] * light)

    # aerial perspective: land near the horizon fades into the horizon colour
    land = (label != SKY) & (label != CLOUD)
    fade = style.haze * np.exp(-np.abs(y - hz) / 0.12) * (1 + (y < hz))  # mountains are farther: more haze
    fade = np.clip(fade, 0, 0.85)[..., None] * land[..., None]
    img = img * (1 - fade) + horizon_col * fade
    lum = img.mean(-1, keepdims=True)
    img = lum + (img - lum) * style.saturation
    return (np.clip(img, 0, 1) * 255 + 0.5).astype(np.uint8)


def _streams(seed: int, index: int, split: str) -> tuple[np.random.Generator, ...]:
    """Independent (layout, style, texture) generators for one item."""
    root = np.random.SeedSequence([seed, _SPLIT_STREAM[split], index])
    return tuple(np.random.default_rng(s) for s in root.spawn(3))


def landscape(
    seed: int, index: int, height: int, width: int, *, split: str = "train", style: Style | int | None = None
) -> dict:
    """One scene: `label` (h, w) uint8, `instance` (h, w) int32, `image` (h, w, 3) uint8 and its `style`.

    `style` replaces the item's own style: a `Style`, or the index of another item to borrow its style from
    (same layout, other lighting), which is how a style encoder can be tested.
    """
    layout_rng, style_rng, texture_rng = _streams(seed, index, split)
    label, instance = make_layout(layout_rng, height, width)
    if isinstance(style, int):
        style = sample_style(_streams(seed, style, split)[1])
    style = style or sample_style(style_rng)
    return {"label": label, "instance": instance, "image": render(label, style, texture_rng), "style": style}


@register("dataset")
class SyntheticLandscapes(Dataset):
    """Procedural landscapes generated on the fly: deterministic from `(seed, split, index)`, any size.

    Args:
        length: number of items (an epoch).
        seed: dataset seed; train and val draw from separate streams of it.
        split: 'train' or 'val'.
        crop_size: output width; height is round(crop_size / aspect_ratio).
        instance_edges: also return instance maps (each boulder, lake, tree cluster, range is one instance).
        flip: random horizontal flips from the torch RNG (default off: every item is already new).
    """

    CLASS_NAMES = CLASSES
    PALETTE = PALETTE

    def __init__(
        self,
        *,
        length: int = 10000,
        seed: int = 0,
        split: str = "train",
        crop_size: int = 64,
        aspect_ratio: float = 1.0,
        instance_edges: bool = False,
        flip: bool = False,
    ) -> None:
        if split not in _SPLIT_STREAM:
            raise ValueError(f"split={split!r}; choose 'train' or 'val'")
        if length < 1 or crop_size < 8:
            raise ValueError(
                f"need length >= 1 and crop_size >= 8, got length={length}, crop_size={crop_size}"
            )
        self.length, self.seed, self.split = length, seed, split
        self.crop_size, self.aspect_ratio = crop_size, aspect_ratio
        self.instance_edges, self.flip = instance_edges, flip

    @property
    def spec(self) -> DataSpec:
        return DataSpec(
            label_nc=len(CLASSES),
            contain_dontcare_label=False,
            instance_edges=self.instance_edges,
            crop_size=self.crop_size,
            aspect_ratio=self.aspect_ratio,
        )

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> dict:
        if not 0 <= index < self.length:
            raise IndexError(f"index {index} out of range for {self.length} items")
        h, w = self.spec.size
        scene = landscape(self.seed, index, h, w, split=self.split)
        flip = self.flip and bool(torch.rand(()) < 0.5)
        arrays = {k: scene[k][:, ::-1] if flip else scene[k] for k in ("label", "instance", "image")}
        item = {
            "label": torch.from_numpy(arrays["label"].astype(np.int64))[None],
            # quantised to 8 bits like the exported PNGs, so on-the-fly and exported data agree exactly
            "image": torch.from_numpy(np.ascontiguousarray(arrays["image"])).permute(2, 0, 1).float() / 127.5
            - 1,
            "path": f"landscape:{self.split}:{self.seed}:{index}",
        }
        if self.instance_edges:
            item["instance"] = torch.from_numpy(arrays["instance"].astype(np.int64))[None]
        return item

    def check_item(self, index: int) -> torch.Tensor:
        """(H, W) ids of one item, for `check_data` histograms."""
        return self[index]["label"][0]

    def style(self, index: int) -> dict:
        """The item's global style parameters (what a style encoder should recover)."""
        return asdict(sample_style(_streams(self.seed, index, self.split)[1]))

    def __repr__(self) -> str:
        name = type(self).__name__
        return f"{name}(length={self.length}, seed={self.seed}, split={self.split!r}, spec={self.spec})"


def export_landscapes(
    root: str | Path,
    n: int,
    size: int | tuple[int, int] = 64,
    seed: int = 0,
    *,
    split: str = "train",
    instances: bool = False,
    subfolder: bool = False,
) -> Path:
    """Write `n` scenes in the custom layout: `images/`, `labels/` (mode L), `instances/`, `classes.txt`.

    Args:
        size: width (square) or (height, width).
        subfolder: write into `images/<split>/` etc. (CustomFolder reads both layouts).
    Returns the root, ready for `CustomFolder(root, label_nc=9, preprocess='none', crop_size=width)`.
    """
    root = Path(root)
    h, w = (size, size) if isinstance(size, int) else size
    kinds = ("images", "labels") + (("instances",) if instances else ())
    dirs = {k: root / k / (split if subfolder else "") for k in kinds}
    for d in dirs.values():
        d.mkdir(parents=True, exist_ok=True)
    (root / "classes.txt").write_text("".join(c + "\n" for c in CLASSES))
    for i in range(n):
        scene = landscape(seed, i, h, w, split=split)
        name = f"{split}_{i:05d}.png"
        Image.fromarray(scene["image"]).save(dirs["images"] / name)
        Image.fromarray(scene["label"]).save(dirs["labels"] / name)
        if instances:
            Image.fromarray(scene["instance"].astype(np.uint8)).save(dirs["instances"] / name)
    return root
