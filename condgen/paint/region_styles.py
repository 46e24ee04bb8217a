"""The painter's style panel for region-style models (SEAN): photos read per region, a style per class.

A photo is uploaded with a label map (an uploaded one, or the map painted on the page), both at the model's
size; its regions give a style matrix (one vector per class, `G.encode_style`) and a swatch per class (the
photo's mean colour over that region). A synthesis then says which photo gives the default style and which
classes take theirs from another photo, and may mix two photos for one class with a slider value. The
JSON endpoints (`condgen/paint/app.py`):

    GET  /region_style             {"enabled": bool, "style_dim"}: whether the model takes region styles
    POST /region_style             {"photo": data URL, "labels": data URL of an id PNG} ->
                                   {"style": key, "preview", "present": [ids], "swatches": {id: [r,g,b]}}
    POST /region_synthesize?seed=  {"labels": id-PNG data URL, "default": key, "regions": {id: key},
                                   "mix": {"class": id, "with": key, "alpha": 0..1} or null} ->
                                   {"images": [data URL], "ms": [...], "regions": {...}, "mix": ...}
"""

from __future__ import annotations

import base64
import hashlib
import time
from collections import OrderedDict
from typing import Any

import numpy as np
import torch

from condgen.networks.region_styles import interpolate
from condgen.paint.model import (
    DECODER,
    STYLE_CACHE,
    InputError,
    PaintModel,
    data_url,
    open_png,
    png_bytes,
    to_uint8_image,
)


def _data_bytes(value: Any, what: str) -> bytes:
    """The bytes of a `data:...;base64,` URL (or bare base64)."""
    if not isinstance(value, str) or not value:
        raise InputError(f"{what}: expected a data URL (data:image/png;base64,...)")
    payload = value.split(",", 1)[1] if value.startswith("data:") else value
    try:
        return base64.b64decode(payload, validate=True)
    except ValueError:
        raise InputError(f"{what}: not valid base64") from None


class RegionStyles:
    """Encoded photos of one served model, keyed by content, and syntheses from them."""

    def __init__(self, model: PaintModel) -> None:
        self.model = model
        self.photos: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self.last_request: dict[str, Any] | None = None  # what the latest synthesis used (tests, the page)

    @property
    def G(self) -> Any:
        return self.model.gan.G

    @property
    def enabled(self) -> bool:
        return hasattr(self.G, "encode_style")

    def info(self) -> dict[str, Any]:
        return {"enabled": self.enabled, "style_dim": getattr(self.G, "style_dim", None)}

    def _require(self) -> None:
        if not self.enabled:
            raise InputError(
                f"{self.model.run}: this model has one style per image (or none); per-region styles need a "
                "SEAN model (gin/sean_*.gin)", 409)

    def _seg(self, ids: np.ndarray) -> torch.Tensor:
        label = torch.from_numpy(ids.astype(np.int64))[None, None]
        instance = label if self.model.spec.instance_edges else None  # no instance map: each region its own
        return self.model.pipe.encode(label, instance, source="painted label map")  # the one label route

    def add(self, body: dict[str, Any]) -> dict[str, Any]:
        """Encode a photo's regions (read with the given id map); returns its key, preview and swatches."""
        self._require()
        photo_bytes = _data_bytes(body.get("photo"), "photo")
        ids, _ = self.model.decode_labels(_data_bytes(body.get("labels"), "labels"), kind="ids", resize=True,
                                          what="the photo's label map")
        self.model.check_ids(ids)
        h, w = self.model.size
        formats = ("PNG", "JPEG", "WEBP", "BMP")
        img = DECODER.submit(open_png, photo_bytes, "style photo", formats).result()
        rgb = np.asarray(img.convert("RGB").resize((w, h)), dtype=np.float32)
        photo = torch.from_numpy(rgb).permute(2, 0, 1)[None] / 127.5 - 1
        seg = self._seg(ids)
        with self.model.lock, torch.no_grad():
            styles = self.G.encode_style(photo.to(self.model.device), seg)[0].cpu()
        present = sorted(int(i) for i in np.unique(ids) if i < self.model.spec.semantic_nc)
        swatches = {str(j): [int(round(v)) for v in rgb[ids == j].mean(0)] for j in present}
        key = hashlib.sha256(photo_bytes + ids.tobytes()).hexdigest()[:16]
        self.photos[key] = {"styles": styles, "present": set(present)}
        self.photos.move_to_end(key)
        while len(self.photos) > STYLE_CACHE:
            self.photos.popitem(last=False)
        preview = data_url(png_bytes(rgb.round().astype(np.uint8)))
        return {"style": key, "preview": preview, "present": present, "swatches": swatches}

    def _photo(self, key: Any) -> dict[str, Any]:
        if key not in self.photos:
            raise InputError(f"unknown style {key!r} (styles expire; upload the photo again)", 404)
        return self.photos[key]

    def _row(self, key: Any, j: int) -> torch.Tensor:
        photo = self._photo(key)
        if j not in photo["present"]:
            name = self.model.classes[j].name if j < len(self.model.classes) else str(j)
            raise InputError(f"the photo {key} has no {name!r} region to take a style from; pick another "
                             "class")
        return photo["styles"][j]

    def synthesize(self, body: dict[str, Any], *, seed: int = 0) -> dict[str, Any]:
        """One image for the id map in `body`, each class styled as `body` says (see the module doc)."""
        self._require()
        ids, _ = self.model.decode_labels(_data_bytes(body.get("labels"), "labels"), kind="ids")
        self.model.check_ids(ids)
        k = self.model.spec.semantic_nc
        default = body.get("default")
        rows = self._photo(default)["styles"].clone() if default else torch.zeros(k, self.G.style_dim)
        regions = body.get("regions") or {}
        if not isinstance(regions, dict):
            raise InputError("regions must map class ids to style keys, e.g. {\"0\": \"<key>\"}")
        for j, key in regions.items():
            if not str(j).isdigit() or not 0 <= int(j) < k:
                raise InputError(f"regions: {j!r} is not a class id of this model (0..{k - 1})")
            rows[int(j)] = self._row(key, int(j))
        mix = body.get("mix")
        if mix:
            j, alpha = int(mix.get("class", -1)), float(mix.get("alpha", 0.0))
            if not 0 <= j < k or not 0.0 <= alpha <= 1.0:
                raise InputError(f"mix needs a class id 0..{k - 1} and alpha in [0, 1], got {mix}")
            rows[j] = interpolate(rows[j], self._row(mix.get("with"), j), alpha)
        seg = self._seg(ids)
        with self.model.lock, torch.no_grad(), torch.random.fork_rng():
            torch.manual_seed(seed)  # the per-pixel noise: the same seed, the same noise
            start = time.perf_counter()
            fake = self.G(seg, rows[None].to(seg))[0].cpu()
            ms = (time.perf_counter() - start) * 1000
        self.last_request = {"ids": ids.copy(), "default": default, "regions": dict(regions), "mix": mix}
        return {"images": [data_url(png_bytes(to_uint8_image(fake)))], "ms": [ms], "seed": seed,
                "default": default, "regions": regions, "mix": mix}
