"""The segmenter registry: which network scores mIoU for which dataset, under which named protocol.

Each `SegmenterSpec` states the facts that papers leave implicit (SPADE #39, #100, OASIS #5, #18): the
weight files, the map from the dataset's label ids to the segmenter's classes, the ignore id, and its named
`SegProtocol`s: the size the image is fed at, which labels it is scored against (the map at the generated
resolution or the original full-resolution file), the preprocessing and the class-averaging rule. Papers
disagree on all of these, and the numbers move by 1-4 mIoU with them; the protocol used is recorded in
every metrics file. `load_segmenter("name[:protocol]")` returns a `Segmenter`; its `confusion(images,
labels)` applies the protocol to images in [-1, 1] (generated or real: the real-image upper bound goes
through the same protocol). Entries:
- `landscape`: `LandscapeSegmenter`, trained here on real synthetic landscapes (cached, no download);
- `deeplabv2_cocostuff` (protocols `ccfpse`, `fullres`, `imaginaire`), `upernet101_ade20k` (`csail`,
  `csail2019`), `drn_d105_cityscapes` (`2048x1024`, `512x256`): the paper segmenters as condgen networks
  (`condgen.networks.segmenters`) loading the released weight files, which load never downloads: a missing
  file is an error naming it, its URL, its size, where to put it and the `condgen weights fetch` command.
  `load_segmenter_network(name, weights)` gives the bare network (raw logits at its own resolution).
"""

from __future__ import annotations

import dataclasses
import difflib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gin
import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor, nn

from condgen.eval.miou import AVERAGING, confusion_matrix, segmentation_scores
from condgen.weights import WeightFile, declare, sha256_file

IGNORE = 255
IMAGE_SIZES = ("entry", "generated", "label")  # or 'long_side:N', 'csail:N', 'HxW'


@dataclass(frozen=True)
class SegProtocol:
    """One named way of scoring with a segmenter; every field changes the numbers.

    Args:
        name: the protocol's name (`load_segmenter("deeplabv2_cocostuff:fullres")`).
        image_size: the size the image is fed at: 'entry' (the entry's `input_size`, float resize: the
            landscape segmenter), 'generated' (as generated, no resize), 'label' (the size of the labels it is
            scored against), 'long_side:N', 'csail:N' (CSAIL's ValDataset rule: short side N, long side at
            most 1000, both rounded up to a multiple of 32) or 'HxW' (e.g. '1024x2048').
        labels: 'generated' (the label map at the generated resolution, nearest-resized by the dataset) or
            'full' (the original label file at its own resolution; needs the dataset).
        average: the class-averaging rule of mIoU ('gt', 'gt_or_pred', 'all'; see `condgen.eval.miou`).
        preprocess: a `PREPROCESS` name (uint8 RGB -> network input), None for networks taking [-1, 1].
        resize_filter: PIL filter for a resized uint8 image ('bicubic', 'bilinear').
        reproduces: the published numbers this protocol reproduces, and whose.
        description: one line on what it is.
    """

    name: str
    image_size: str = "entry"
    labels: str = "generated"
    average: str = "gt_or_pred"
    preprocess: str | None = None
    resize_filter: str = "bicubic"
    reproduces: str = ""
    description: str = ""

    def __post_init__(self) -> None:
        if self.average not in AVERAGING:
            raise ValueError(f"protocol {self.name!r}: average={self.average!r}, choose one of {AVERAGING}")
        if self.labels not in ("generated", "full"):
            raise ValueError(f"protocol {self.name!r}: labels={self.labels!r}, choose 'generated' or 'full'")
        if self.preprocess is not None and self.preprocess not in PREPROCESS:
            raise ValueError(f"protocol {self.name!r}: no preprocessing {self.preprocess!r}")

    def record(self) -> dict:
        return dataclasses.asdict(self)

    def input_size(
        self, image_hw: Sequence[int], label_hw: Sequence[int], entry: Any = None
    ) -> tuple[int, int]:
        """(H, W) the network is fed at, for an image of `image_hw` scored against labels of `label_hw`."""
        h, w = int(image_hw[0]), int(image_hw[1])
        rule = self.image_size
        if rule == "entry":
            return tuple(entry) if entry is not None else (h, w)
        if rule == "generated":
            return h, w
        if rule == "label":
            return int(label_hw[0]), int(label_hw[1])
        if rule.startswith("long_side:"):
            n = int(rule.split(":")[1])
            scale = n / max(h, w)
            return max(1, round(h * scale)), max(1, round(w * scale))
        if rule.startswith("csail:"):
            return csail_size(h, w, int(rule.split(":")[1]))
        if "x" in rule:
            a, b = rule.split("x")
            return int(a), int(b)
        raise ValueError(f"protocol {self.name!r}: unknown image_size rule {rule!r}")


DEFAULT_PROTOCOL = SegProtocol(
    "default", description="the entry's input size (bilinear), labels at the generated resolution"
)


def csail_size(h: int, w: int, short: int, max_size: int = 1000, multiple: int = 32) -> tuple[int, int]:
    """CSAIL ValDataset's size rule: short side `short` (long side at most `max_size`), rounded UP to 32."""
    scale = min(short / min(h, w), max_size / max(h, w))
    th, tw = int(h * scale), int(w * scale)
    return ((th - 1) // multiple + 1) * multiple, ((tw - 1) // multiple + 1) * multiple


# ------------------------------------------------------------------------------------ preprocessing
# Every function takes uint8 RGB images (b, 3, H, W) and returns the float32 tensor the network receives
# (the original evaluation preprocessing, matched exactly by tests/eval/test_segmenter_parity.py).
DEEPLAB_MEAN_BGR = (104.008, 116.669, 122.675)
UPERNET_MEAN_STD_RGB = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
UPERNET_MEAN_BGR_2019 = (102.9801, 115.9465, 122.7717)
DRN_MEAN_STD_RGB = (
    (0.29010095242892997, 0.32808144844279574, 0.28696394422942517),
    (0.1829540508368939, 0.18656561047509476, 0.18447508988480435),
)


def _check_uint8(img: Tensor) -> None:
    if img.dtype != torch.uint8 or img.dim() != 4 or img.shape[1] != 3:
        raise TypeError(f"expected uint8 RGB images (b, 3, H, W), got {img.dtype} {tuple(img.shape)}")


def _column(values: Sequence[float], dtype: torch.dtype, device: Any) -> Tensor:
    return torch.tensor(values, dtype=dtype, device=device).view(1, 3, 1, 1)


def preprocess_deeplab(img: Tensor) -> Tensor:
    """DeepLabV2 (kazuto1011): BGR float 0..255 minus the BGR mean (104.008, 116.669, 122.675), no std."""
    _check_uint8(img)
    bgr = img.flip(1).double()
    return (bgr - _column(DEEPLAB_MEAN_BGR, torch.float64, img.device)).float()


def preprocess_upernet(img: Tensor) -> Tensor:
    """UperNet, today's (converted, 2019-08) weights: RGB / 255, ImageNet mean / std."""
    _check_uint8(img)
    mean, std = UPERNET_MEAN_STD_RGB
    x = img.float() / 255.0
    return (x - _column(mean, torch.float32, img.device)) / _column(std, torch.float32, img.device)


def preprocess_upernet_2019(img: Tensor) -> Tensor:
    """UperNet, the pre-2019-08 files (SPADE's era): BGR float 0..255 minus (102.98, 115.95, 122.77)."""
    _check_uint8(img)
    return img.flip(1).float() - _column(UPERNET_MEAN_BGR_2019, torch.float32, img.device)


def preprocess_drn(img: Tensor) -> Tensor:
    """DRN Cityscapes: RGB / 255, minus the dataset mean, divided by its std (info.json, float32)."""
    _check_uint8(img)
    mean, std = DRN_MEAN_STD_RGB
    x = img.float() / 255.0
    return (x - _column(mean, torch.float32, img.device)) / _column(std, torch.float32, img.device)


PREPROCESS: dict[str, Callable[[Tensor], Tensor]] = {
    "deeplab_bgr": preprocess_deeplab,
    "upernet_imagenet": preprocess_upernet,
    "upernet_bgr2019": preprocess_upernet_2019,
    "drn_cityscapes": preprocess_drn,
}
_PIL_FILTERS = {"bicubic": Image.BICUBIC, "bilinear": Image.BILINEAR, "nearest": Image.NEAREST}


def resize_uint8(img: Tensor, size: Sequence[int], filter: str = "bicubic") -> Tensor:
    """Resize uint8 RGB images (b, 3, H, W) to (H', W') with PIL, as image files would be resized."""
    _check_uint8(img)
    out = []
    for x in img.cpu():
        pil = Image.fromarray(x.permute(1, 2, 0).numpy())
        pil = pil.resize((int(size[1]), int(size[0])), _PIL_FILTERS[filter])
        out.append(torch.from_numpy(np.asarray(pil).copy()).permute(2, 0, 1))
    return torch.stack(out).to(img.device)


def upernet_valdataset(img: Tensor, short: int, max_size: int = 1000, multiple: int = 32) -> Tensor:
    """CSAIL's ValDataset path on uint8 RGB images: size rule, PIL bilinear, today's normalisation."""
    size = csail_size(img.shape[-2], img.shape[-1], short, max_size, multiple)
    return preprocess_upernet(resize_uint8(img, size, "bilinear"))


def _to_uint8(img: Tensor) -> Tensor:
    from condgen.eval.fid import to_uint8

    return to_uint8(img)


# ----------------------------------------------------------------------------------------- registry
@dataclass(frozen=True)
class SegmenterSpec:
    """A registry entry.

    Args:
        name: registry key.
        datasets: dataset class names it scores by default (`segmenter_for`).
        num_classes: the segmenter's output classes.
        input_size: (H, W) of the 'entry' image-size rule (generated images are resized to it, bilinear,
            antialiased when shrinking), and the nominal size of the paper entries; None keeps their size.
        label_remap: dataset label ids (b, H, W) -> segmenter class ids, `IGNORE` (255) for don't care.
        weights: the published files the builder needs.
        builder: `builder(spec, weight_paths, **options) -> (net, record)`; `record` is JSON-able provenance
            (weights' SHA-256, recipe, ...). The net takes [-1, 1] images, or the output of the protocol's
            `preprocess` when it names one.
        protocol: one line on how the paper used it.
        protocols: the named protocols; the first is the default.
        head: `head(net, logits, (H, W)) -> logits at (H, W)` (default: bilinear resize).
    """

    name: str
    datasets: tuple[str, ...]
    num_classes: int
    input_size: tuple[int, int] | None
    builder: Callable[..., tuple[nn.Module, dict]]
    label_remap: Callable[[Tensor], Tensor] | None = None
    weights: tuple[WeightFile, ...] = ()
    protocol: str = ""
    ignore_index: int = field(default=IGNORE)
    protocols: tuple[SegProtocol, ...] = ()
    head: Callable[[nn.Module, Tensor, tuple[int, int]], Tensor] | None = None

    def get_protocol(self, name: str | None = None) -> SegProtocol:
        if not self.protocols:
            if name not in (None, DEFAULT_PROTOCOL.name):
                raise KeyError(f"segmenter {self.name!r} has only the 'default' protocol, not {name!r}")
            return DEFAULT_PROTOCOL
        if name is None:
            return self.protocols[0]
        for p in self.protocols:
            if p.name == name:
                return p
        raise KeyError(
            f"segmenter {self.name!r} has no protocol {name!r}; choose one of "
            f"{', '.join(p.name for p in self.protocols)}"
        )


SEGMENTERS: dict[str, SegmenterSpec] = {}


def register_segmenter(spec: SegmenterSpec) -> SegmenterSpec:
    """Add (or replace) a registry entry, e.g. a paper segmenter with its network code plugged in."""
    SEGMENTERS[spec.name] = spec
    return spec


def split_name(name: str) -> tuple[str, str | None]:
    """'deeplabv2_cocostuff:fullres' -> ('deeplabv2_cocostuff', 'fullres'); no colon -> (name, None)."""
    base, _, protocol = name.partition(":")
    return base, (protocol or None)


def get_segmenter(name: str) -> SegmenterSpec:
    name = split_name(name)[0]
    if name not in SEGMENTERS:
        close = difflib.get_close_matches(name, list(SEGMENTERS), n=3, cutoff=0.5)
        hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        raise KeyError(f"no segmenter {name!r}.{hint} Registered: {', '.join(sorted(SEGMENTERS))}")
    return SEGMENTERS[name]


def segmenter_for(dataset: Any) -> str:
    """The registry name of the default segmenter for a dataset (instance, class or class name)."""
    name = (
        dataset
        if isinstance(dataset, str)
        else (dataset.__name__ if isinstance(dataset, type) else type(dataset).__name__)
    )
    for spec in SEGMENTERS.values():
        if name in spec.datasets:
            return spec.name
    raise KeyError(
        f"no segmenter is registered for dataset {name!r}; register one with register_segmenter "
        f"or pass --segmenter none to skip mIoU"
    )


class Segmenter(nn.Module):
    """A registry entry with its network and protocol: images in [-1, 1] -> logits, confusion counts."""

    def __init__(
        self, spec: SegmenterSpec, net: nn.Module, record: dict, protocol: SegProtocol | None = None
    ) -> None:
        super().__init__()
        self.spec, self.net, self.record = spec, net.eval().requires_grad_(False), record
        self.protocol = protocol or spec.get_protocol()

    def train(self, mode: bool = True) -> Segmenter:
        return super().train(False)  # a fixed evaluator

    def _resize(self, img: Tensor) -> Tensor:
        size = self.spec.input_size
        if size is None or tuple(img.shape[-2:]) == tuple(size):
            return img
        shrink = size[0] < img.shape[-2] or size[1] < img.shape[-1]
        return F.interpolate(img, size=size, mode="bilinear", align_corners=False, antialias=shrink)

    @torch.no_grad()
    def logits(self, img: Tensor, size: Sequence[int] | None = None) -> Tensor:
        """img: (b, 3, H, W) in [-1, 1] -> (b, num_classes, *size) logits under the protocol."""
        size = tuple(int(s) for s in (size if size is not None else img.shape[-2:]))
        p = self.protocol
        if p.preprocess is None:
            x = self._resize(img.float()) if p.image_size == "entry" else img.float()
            logits = self.net(x)
        else:
            u8 = _to_uint8(img)
            hw = p.input_size(u8.shape[-2:], size, self.spec.input_size)
            if tuple(hw) != tuple(u8.shape[-2:]):
                u8 = resize_uint8(u8, hw, p.resize_filter)
            logits = self.net(PREPROCESS[p.preprocess](u8))
        if self.spec.head is not None:
            logits = self.spec.head(self.net, logits, size)
        if tuple(logits.shape[-2:]) != size:
            logits = F.interpolate(logits, size=size, mode="bilinear", align_corners=False)
        return logits

    def forward(self, img: Tensor) -> Tensor:
        """img: (b, 3, H, W) in [-1, 1] -> (b, num_classes, H, W) logits."""
        return self.logits(img)

    def predict(self, img: Tensor, size: Sequence[int] | None = None) -> Tensor:
        """(b, H, W) class ids (at `size`, default the image size)."""
        return self.logits(img, size).argmax(1)

    def target(self, label: Tensor) -> Tensor:
        """Dataset label ids (b, 1, H, W) or (b, H, W) -> segmenter class ids (b, H, W), 255 = ignore."""
        label = label[:, 0] if label.dim() == 4 else label
        return self.spec.label_remap(label) if self.spec.label_remap is not None else label

    @torch.no_grad()
    def confusion(
        self, img: Tensor, label: Tensor, *, ds: Any = None, indices: Sequence[int] | None = None
    ) -> Tensor:
        """(k, k) confusion counts of images (in [-1, 1]) against their labels under the protocol.

        Args:
            label: the dataset's label maps at the generated resolution (b, 1, H, W).
            ds, indices: the dataset and the items' indices, for protocols scored against the original
                full-resolution label files (`labels='full'`; read with `ds.check_item`).
        """
        k, ignore = self.spec.num_classes, self.spec.ignore_index
        if self.protocol.labels == "full":
            if ds is None or indices is None or not hasattr(ds, "check_item"):
                raise ValueError(
                    f"protocol {self.protocol.name!r} scores against the full-resolution label files: "
                    "pass ds= (a dataset with check_item) and indices="
                )
            conf = torch.zeros(k, k, dtype=torch.long)
            for j, i in enumerate(indices):
                t = self.target(ds.check_item(int(i))[None].to(label.device))
                conf += confusion_matrix(
                    self.predict(img[j : j + 1], t.shape[-2:]).cpu(), t.cpu(), k, ignore_index=ignore
                )
            return conf
        t = self.target(label)
        return confusion_matrix(self.predict(img, t.shape[-2:]).cpu(), t.cpu(), k, ignore_index=ignore)

    def scores(self, confusion: Tensor) -> dict:
        """mIoU etc. with the protocol's class-averaging rule."""
        return segmentation_scores(confusion, average=self.protocol.average)

    def describe(self, generated_size: Sequence[int]) -> dict:
        """The JSON-able protocol fields for a metrics file (the real-image upper bound uses the same)."""
        p = self.protocol
        h, w = int(generated_size[0]), int(generated_size[1])
        if p.image_size == "entry":
            fed: Any = list(self.spec.input_size or (h, w))
        elif p.image_size == "label":
            fed = "the label file's size"
        else:
            fed = list(p.input_size((h, w), (h, w), self.spec.input_size))
        return {
            "protocol_name": p.name,
            "seg_protocol": p.record(),
            "averaging": p.average,
            "input_size": fed,
            "labels": "original full-resolution files" if p.labels == "full" else f"generated {h}x{w}",
            "real_upper_bound": "same protocol, the real validation photos at the generated size",
        }

    @torch.no_grad()
    def features(self, img: Tensor) -> Tensor:
        """(b, d) float64 image features of the network (for FID/KID in its feature space)."""
        if not hasattr(self.net, "features"):
            raise TypeError(f"segmenter {self.spec.name!r} has no feature head; use the Inception instead")
        return self.net.features(self._resize(img.float())).double()

    @torch.no_grad()
    def feature_maps(self, img: Tensor) -> list[Tensor]:
        """The network's intermediate feature maps [(b, c_l, h_l, w_l)] (for feature-space diversity)."""
        if not hasattr(self.net, "feature_maps"):
            raise TypeError(
                f"segmenter {self.spec.name!r} exposes no feature maps (a `feature_maps(img)` method of its "
                "network); use the LPIPS (AlexNet) diversity instead"
            )
        return [f.float() for f in self.net.feature_maps(self._resize(img.float()))]


def _pins(expected: str | Sequence[str | None] | None, n: int) -> tuple[str | None, ...]:
    if expected is None:
        return (None,) * n
    pins = (expected,) if isinstance(expected, str) else tuple(expected)
    if len(pins) != n:
        raise ValueError(f"expected_sha256 needs one digest per weight file ({n}), got {len(pins)}")
    return pins


@gin.configurable("load_segmenter", allowlist=["weights", "protocol", "expected_sha256", "recipe"])
def load_segmenter(
    name: str,
    *,
    weights: Sequence[str | Path] | str | Path | None = None,
    protocol: str | None = None,
    expected_sha256: str | Sequence[str | None] | None = None,
    **options: Any,
) -> Segmenter:
    """Build a registered segmenter.

    Args:
        name: registry name, optionally with a protocol: 'deeplabv2_cocostuff:fullres'.
        weights: paths overriding the files' default locations (same order as `spec.weights`).
        protocol: a protocol name of the entry (default: the entry's first).
        expected_sha256: pin(s) of the weight files: a file with another digest is an error.

    The three are gin-bindable too (`load_segmenter.weights = ['/data/w/deeplab.pth']`, e.g. with
    `condgen eval --gin_bindings`); explicit arguments win.
    """
    base, named = split_name(name)
    spec = get_segmenter(base)
    chosen = spec.get_protocol(protocol or named)
    if isinstance(weights, (str, Path)):
        weights = (weights,)
    given = tuple(weights) if weights is not None else (None,) * len(spec.weights)
    if len(given) != len(spec.weights):
        raise ValueError(f"segmenter {base!r} takes {len(spec.weights)} weight files, got {len(given)}")
    pins = _pins(expected_sha256, len(spec.weights))
    paths = [w.resolve(p, expected_sha256=pin) for w, p, pin in zip(spec.weights, given, pins, strict=True)]
    net, record = spec.builder(spec, paths, **options)
    return Segmenter(spec, net, {"name": base, **record}, chosen)


# -------------------------------------------------------------------------------------------- entries
def _landscape(
    spec: SegmenterSpec, paths: list[Path], *, recipe: Any = None, cache: str | Path | None = None
) -> tuple[nn.Module, dict]:
    from condgen.eval.landscape_segmenter import LandscapeRecipe, landscape_segmenter

    recipe = recipe or LandscapeRecipe()
    if recipe.size != spec.input_size[0]:
        raise ValueError(
            f"the landscape entry's input_size is {spec.input_size}, the recipe trains at "
            f"{recipe.size}; register a copy of the entry with input_size=({recipe.size}, {recipe.size})"
        )
    return landscape_segmenter(recipe, cache=cache)


register_segmenter(
    SegmenterSpec(
        name="landscape",
        datasets=("SyntheticLandscapes",),
        num_classes=9,
        input_size=(64, 64),
        builder=_landscape,
        protocol="LandscapeSegmenter trained on real synthetic landscapes (condgen)",
    )
)


def _dontcare_to_ignore(label_nc: int) -> Callable[[Tensor], Tensor]:
    """The dataset's don't-care channel id (`label_nc`) becomes the ignore id."""
    return lambda label: label.masked_fill(label == label_nc, IGNORE)


def _ade20k_classes(label: Tensor) -> Tensor:
    """ADE20K ids as condgen feeds them (0 'other', 1..150) -> UperNet's 0..149; 'other' is ignored."""
    label = label.long()
    return torch.where(label == 0, torch.full_like(label, IGNORE), label - 1)


# Cityscapes labelIds (0..33; 34 = license plate) -> the 19 trainIds the DRN predicts; 255 = ignored.
CITYSCAPES_TRAIN_IDS = (
    IGNORE,
    IGNORE,
    IGNORE,
    IGNORE,
    IGNORE,
    IGNORE,
    IGNORE,
    0,
    1,
    IGNORE,
    IGNORE,
    2,
    3,
    4,
    IGNORE,
    IGNORE,
    IGNORE,
    5,
    IGNORE,
    6,
    7,
    8,
    9,
    10,
    11,
    12,
    13,
    14,
    15,
    IGNORE,
    IGNORE,
    16,
    17,
    18,
    IGNORE,
)


def _cityscapes_train_ids(label: Tensor) -> Tensor:
    table = torch.tensor(CITYSCAPES_TRAIN_IDS, device=label.device)
    return table[label.long().clamp(0, len(table) - 1)]


# ------------------------------------------------------------------------------ the paper networks
PAPER_NETWORKS = ("deeplabv2_cocostuff", "upernet101_ade20k", "drn_d105_cityscapes")
WeightsArg = str | Path | Mapping[str, Tensor]


def _state_dict(weights: WeightsArg, what: str) -> tuple[Mapping[str, Tensor], str]:
    """(state dict, where it came from) from a path or an in-memory state dict."""
    from condgen.networks.segmenters import unwrap_checkpoint

    if isinstance(weights, Mapping):
        return weights, f"{what} (state dict)"
    path = Path(weights)
    if not path.is_file():
        raise FileNotFoundError(f"{what}: no file {path}")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - any unreadable file: say which and why
        raise ValueError(
            f"{what}: cannot read {path} as a PyTorch state dict ({type(e).__name__}: {e})"
        ) from e
    return unwrap_checkpoint(obj), str(path)


def load_segmenter_network(name: str, weights: Any, *, legacy_interp: bool = False) -> nn.Module:
    """A paper segmenter network with released weights, strictly loaded, in eval mode.

    Args:
        name: 'deeplabv2_cocostuff', 'upernet101_ade20k' or 'drn_d105_cityscapes'.
        weights: a path or a state dict; for UperNet a pair (encoder, decoder) of them.
        legacy_interp: DeepLab only, scale the MSC inputs as torch <= 1.4 did (identical at 256x256).
    Returns:
        `net(x)` takes the preprocessed tensor (`PREPROCESS`) and returns raw logits at the network's own
        resolution: DeepLab the MSC max at 1/8, UperNet the last conv's logits at 1/4 (before the
        softmax), DRN the seg logits at 1/8 (`net.up_log_softmax(x)` gives its first output).
    Raises:
        StateDictMismatchError naming every missing, unexpected and mis-shaped key.
    """
    from condgen.networks.segmenters import deeplabv2, drn, load_strict, upernet

    name = split_name(name)[0]
    if name == "deeplabv2_cocostuff":
        sd, where = _state_dict(weights, "DeepLabV2 COCO-Stuff weights")
        net = load_strict(
            deeplabv2.DeepLabV2MSC(182, legacy_interp=legacy_interp), sd, rename=deeplabv2.RENAME, what=where
        )
    elif name == "upernet101_ade20k":
        if isinstance(weights, (str, Path, Mapping)) or len(weights) != 2:
            raise ValueError("upernet101_ade20k takes a pair of weights: (encoder, decoder)")
        net = upernet.UperNet(150)
        for part, w in zip(("encoder", "decoder"), weights, strict=True):
            sd, where = _state_dict(w, f"UperNet101 {part} weights")
            load_strict(
                getattr(net, part), sd, rename=upernet.RENAME, drop_suffixes=upernet.SYNCBN_EXTRAS, what=where
            )
    elif name == "drn_d105_cityscapes":
        sd, where = _state_dict(weights, "DRN-D-105 Cityscapes weights")
        net = load_strict(drn.DRNSeg(19), sd, rename=drn.RENAME, what=where)
    else:
        raise KeyError(f"no paper segmenter network {name!r}; choose one of {', '.join(PAPER_NETWORKS)}")
    return net.eval().requires_grad_(False)


def _paper_builder(
    spec: SegmenterSpec, paths: list[Path], *, legacy_interp: bool = False
) -> tuple[nn.Module, dict]:
    from condgen.networks.segmenters import count_parameters

    weights = paths[0] if len(paths) == 1 else tuple(paths)
    net = load_segmenter_network(spec.name, weights, legacy_interp=legacy_interp)
    files = [
        {"what": w.what, "path": str(p), "sha256": sha256_file(p)}
        for w, p in zip(spec.weights, paths, strict=True)
    ]
    digest = files[0]["sha256"] if len(files) == 1 else [f["sha256"] for f in files]
    return net, {
        "weights": files,
        "weights_sha256": digest,
        "param_count": count_parameters(net),
        "network": f"condgen.networks.segmenters ({type(net).__name__})",
    }


def _drn_head(net: nn.Module, logits: Tensor, size: tuple[int, int]) -> Tensor:
    """DRN's own up-sampling (the frozen bilinear transposed conv, 8x); resized only when 8x != size."""
    return net.up(logits)


COCO_PROTOCOLS = (
    SegProtocol(
        "ccfpse",
        image_size="generated",
        labels="generated",
        average="gt",
        preprocess="deeplab_bgr",
        reproduces="CC-FPSE's COCO-Stuff numbers (CC-FPSE 41.6 mIoU, 70.7 accuracy; CC-FPSE #4: 'same "
        "repos and weights as SPADE'), so SPADE's published 37.4 as far as its authors' description goes",
        description="the generated 256x256 image fed directly, labels nearest-resized to 256, "
        "mean over classes present in the ground truth (DeepLab's own rule)",
    ),
    SegProtocol(
        "fullres",
        image_size="label",
        labels="full",
        average="gt",
        preprocess="deeplab_bgr",
        resize_filter="bicubic",
        reproduces="the later re-evaluations of GauGAN/SPADE at full resolution (38.78)",
        description="the generated image bicubic-upsampled to the original label size, scored against "
        "the full-resolution label file, mean over classes present in the ground truth",
    ),
    SegProtocol(
        "imaginaire",
        image_size="long_side:512",
        labels="generated",
        average="all",
        preprocess="deeplab_bgr",
        resize_filter="bilinear",
        reproduces="NVlabs/imaginaire's COCO-Stuff evaluation wrapper (long side 512, BGR mean)",
        description="the image resized to long side 512 (bilinear, assumed), logits back to the "
        "generated label size, mean over all 182 classes (absent classes count 0)",
    ),
)
ADE20K_PROTOCOLS = (
    SegProtocol(
        "csail",
        image_size="csail:256",
        labels="generated",
        average="all",
        preprocess="upernet_imagenet",
        resize_filter="bilinear",
        reproduces="the CSAIL recipe with today's ade20k-resnet101-upernet files (as OASIS #17 re-measured: "
        "42.76 for OASIS against 48.8 reported)",
        description="CSAIL ValDataset rule (short side 256, max 1000, multiple of 32, PIL bilinear), single "
        "scale, RGB/255 ImageNet mean/std, softmax at the label size, mean over all 150 classes",
    ),
    SegProtocol(
        "csail2019",
        image_size="csail:256",
        labels="generated",
        average="all",
        preprocess="upernet_bgr2019",
        resize_filter="bilinear",
        reproduces="SPADE's ADE20K numbers (SPADE 38.5, CC-FPSE 43.7) with the 2019 "
        "baseline-resnet101-upernet files",
        description="the same recipe with the pre-2019-08 preprocessing: BGR 0..255 minus "
        "(102.98, 115.95, 122.77); only for the old files",
    ),
)
CITYSCAPES_PROTOCOLS = (
    SegProtocol(
        "2048x1024",
        image_size="1024x2048",
        labels="full",
        average="gt_or_pred",
        preprocess="drn_cityscapes",
        resize_filter="bicubic",
        reproduces="SPADE's Cityscapes numbers (SPADE 62.3, CC-FPSE 65.5): OASIS #18 needed the "
        "generated images upsampled to 2048x1024 to reproduce them",
        description="the generated image bicubic-upsampled to 2048x1024, scored against the "
        "full-resolution labelIds -> 19 trainIds, DRN's up-sampling, mean over classes in GT or prediction",
    ),
    SegProtocol(
        "512x256",
        image_size="generated",
        labels="generated",
        average="gt_or_pred",
        preprocess="drn_cityscapes",
        reproduces="no published number exactly (OASIS #5 evaluates at 512x256 but with an unreleased "
        "DRN); the cheap protocol at the generated size",
        description="the generated 512x256 image fed directly, labels nearest-downsampled to 512x256",
    ),
)

register_segmenter(
    SegmenterSpec(
        name="deeplabv2_cocostuff",
        datasets=("CocoStuff",),
        num_classes=182,
        input_size=(256, 256),
        label_remap=_dontcare_to_ignore(182),
        weights=(
            declare(
                WeightFile(
                    "DeepLabV2-ResNet101 (MSC) COCO-Stuff 164k",
                    ("deeplabv2_resnet101_msc-cocostuff164k-100000.pth",),
                    "https://github.com/kazuto1011/deeplab-pytorch/releases/download/v1.0/"
                    "deeplabv2_resnet101_msc-cocostuff164k-100000.pth",
                    None,
                    size="≈ 224 MB (55.9 M float32; not measured, no checksum published)",
                    name="deeplabv2_cocostuff",
                    used_by="segmenter:deeplabv2_cocostuff",
                )
            ),
        ),
        builder=_paper_builder,
        protocol="SPADE/CC-FPSE: DeepLabV2-ResNet101-MSC (kazuto1011/deeplab-pytorch), named protocols "
        "ccfpse (default), fullres, imaginaire",
        protocols=COCO_PROTOCOLS,
    )
)
register_segmenter(
    SegmenterSpec(
        name="upernet101_ade20k",
        datasets=("ADE20K",),
        num_classes=150,
        input_size=(256, 256),
        label_remap=_ade20k_classes,
        weights=tuple(
            declare(
                WeightFile(
                    f"UperNet-ResNet101 ADE20K {part}",
                    (f"ade20k-resnet101-upernet-{part}_epoch_50.pth",),  # renamed: both are *_epoch_50.pth
                    f"http://sceneparsing.csail.mit.edu/model/pytorch/ade20k-resnet101-upernet/{part}_epoch_50.pth",
                    None,
                    size=f"≈ {size} (not measured, no checksum published)",
                    name=f"upernet101_ade20k_{part}",
                    group="upernet101_ade20k",
                    used_by="segmenter:upernet101_ade20k",
                )
            )
            for part, size in (("encoder", "171 MB"), ("decoder", "163 MB"))
        ),
        builder=_paper_builder,
        protocol="SPADE: CSAIL UperNet-R101, imgSizes (256,) single scale (OASIS #17); protocols csail "
        "(default, today's files), csail2019 (the 2019 files)",
        protocols=ADE20K_PROTOCOLS,
    )
)
register_segmenter(
    SegmenterSpec(
        name="drn_d105_cityscapes",
        datasets=("Cityscapes",),
        num_classes=19,
        input_size=(256, 512),
        label_remap=_cityscapes_train_ids,
        weights=(
            declare(
                WeightFile(
                    "DRN-D-105 (multi-scale) Cityscapes",
                    ("drn-d-105_ms_cityscapes.pth",),
                    # Google Drive's direct-download form of the file the project page links to
                    "https://drive.usercontent.google.com/download?id=1O-BH64Rvc40cT_SQrvbnebTWRwC74TJp"
                    "&export=download&confirm=t",
                    None,
                    size="≈ 217 MB (not measured; md5 22f6aac9dc4dcf255bad997463fd40d0 per lmxyy/sige)",
                    name="drn_d105_cityscapes",
                    page="http://go.yf.io/drn-cityscapes-models (fyu/drn DRN-D-105)",
                    used_by="segmenter:drn_d105_cityscapes",
                )
            ),
        ),
        builder=_paper_builder,
        protocol="SPADE: DRN-D-105 (fyu/drn); labelIds -> 19 trainIds; protocols 2048x1024 (default, "
        "OASIS #18), 512x256 (OASIS #5: sizes matter)",
        protocols=CITYSCAPES_PROTOCOLS,
        head=_drn_head,
    )
)
