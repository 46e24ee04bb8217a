"""The segmenter registry: `SegmenterSpec` entries (one file per dataset registers its own), the
`Segmenter` module that applies a protocol, `load_segmenter` and `load_segmenter_network`."""

from __future__ import annotations

import difflib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gin
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from condgen.eval.miou import confusion_matrix, segmentation_scores
from condgen.eval.segmenters.protocol import (
    DEFAULT_PROTOCOL,
    IGNORE,
    PREPROCESS,
    SegProtocol,
    resize_uint8,
)
from condgen.weights import WeightFile, sha256_file


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
        network: `network(weights, legacy_interp=False) -> nn.Module`, the bare network with released
            weights (a path or state dict, a tuple for several files) strictly loaded; what
            `load_segmenter_network` and `_paper_builder` build. None for entries built another way.
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
    network: Callable[..., nn.Module] | None = None

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


# module=: the selector gin knew before the registry became a package (condgen.eval.segmenters.load_segmenter)
@gin.configurable(
    "load_segmenter",
    module="condgen.eval.segmenters",
    allowlist=["weights", "protocol", "expected_sha256", "recipe"],
)
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


def _dontcare_to_ignore(label_nc: int) -> Callable[[Tensor], Tensor]:
    """The dataset's don't-care channel id (`label_nc`) becomes the ignore id."""
    return lambda label: label.masked_fill(label == label_nc, IGNORE)


# ------------------------------------------------------------------------------ the paper networks
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
    """A paper segmenter network with released weights, strictly loaded, in eval mode (the entry's `network`).

    Args:
        name: 'deeplabv2_cocostuff', 'upernet101_ade20k' or 'drn_d105_cityscapes' (an entry with a `network`).
        weights: a path or a state dict; for UperNet a pair (encoder, decoder) of them.
        legacy_interp: DeepLab only, scale the MSC inputs as torch <= 1.4 did (identical at 256x256).
    Returns:
        `net(x)` takes the preprocessed tensor (`PREPROCESS`) and returns raw logits at the network's own
        resolution: DeepLab the MSC max at 1/8, UperNet the last conv's logits at 1/4 (before the
        softmax), DRN the seg logits at 1/8 (`net.up_log_softmax(x)` gives its first output).
    Raises:
        StateDictMismatchError naming every missing, unexpected and mis-shaped key.
    """
    name = split_name(name)[0]
    spec = SEGMENTERS.get(name)
    if spec is None or spec.network is None:
        paper = [n for n, s in SEGMENTERS.items() if s.network is not None]
        raise KeyError(f"no paper segmenter network {name!r}; choose one of {', '.join(paper)}")
    net = spec.network(weights, legacy_interp=legacy_interp)
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


