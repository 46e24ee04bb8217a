"""Diversity of multi-modal models: mean pairwise LPIPS between samples of the same label map.

As OASIS and SDM report it: for each label map, `n` samples with different latents; LPIPS (Zhang et al. 2018,
v0.1, AlexNet backbone, the `lpips` package) between every pair; the mean over pairs and maps. The linear
calibration layers ship inside the `lpips` package; the AlexNet backbone is torchvision's ImageNet file,
which `lpips` would download: here it is found offline (torch.hub's checkpoint folder or a path), its
SHA-256 prefix checked, and loaded into the backbone. `random_weights=True` keeps a seeded random backbone,
for tests only (the numbers are then meaningless).

`SegmenterFeatureDistance` is an honest stand-in where the AlexNet file is unavailable: the same recipe
(unit-normalised feature maps, squared differences, spatial means) in the evaluation segmenter's feature
space, with no learned weights. It is reported under its own name (`seg_diversity`), never as LPIPS.
"""

from __future__ import annotations

import itertools
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from condgen.weights import WeightFile, declare, sha256_file

ALEXNET = declare(
    WeightFile(
        what="LPIPS backbone: torchvision AlexNet (ImageNet, IMAGENET1K_V1)",
        filenames=("alexnet-owt-7be5be79.pth",),
        url="https://download.pytorch.org/models/alexnet-owt-7be5be79.pth",
        sha256="7be5be79",  # torch.hub's convention: the file name carries the first 8 hex digits of SHA-256
        env="CONDGEN_ALEXNET",
        size="≈ 233 MB",
        name="alexnet",
        used_by="lpips",
    )
)
# lpips' backbone slices hold torchvision `alexnet().features` layers under their own indices
_SLICES = {0: 1, 3: 2, 6: 3, 8: 4, 10: 5}


class LPIPS(nn.Module):
    """LPIPS v0.1 (AlexNet) distance between images in [-1, 1]: (b, 3, H, W) x 2 -> (b,).

    Args:
        weights: the AlexNet file; default $CONDGEN_ALEXNET, then torch.hub's checkpoint folder.
        random_weights: seeded random backbone instead (tests only).
    """

    def __init__(
        self, *, weights: str | Path | None = None, random_weights: bool = False, seed: int = 0
    ) -> None:
        super().__init__()
        import lpips

        with torch.random.fork_rng(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torchvision's deprecation notice for `pretrained=False`
            torch.manual_seed(seed)
            self.net = lpips.LPIPS(net="alex", version="0.1", pnet_rand=True, verbose=False)
        lin = Path(lpips.__file__).parent / "weights" / "v0.1" / "alex.pth"
        self.record = {"name": "lpips-v0.1-alex", "linear_sha256": sha256_file(lin)}
        if random_weights:
            self.record["backbone_sha256"] = f"random(seed={seed})"
        else:
            path = ALEXNET.resolve(weights)
            sd = torch.load(path, map_location="cpu", weights_only=True)
            backbone = {}
            for index, slice_no in _SLICES.items():
                for kind in ("weight", "bias"):
                    backbone[f"slice{slice_no}.{index}.{kind}"] = sd[f"features.{index}.{kind}"]
            self.net.net.load_state_dict(backbone, strict=True)
            self.record["backbone_sha256"] = sha256_file(path)
        self.random_weights = random_weights
        self.net.requires_grad_(False).eval()

    def train(self, mode: bool = True) -> LPIPS:
        return super().train(False)

    @torch.no_grad()
    def forward(self, a: Tensor, b: Tensor) -> Tensor:
        """a, b: (n, 3, H, W) in [-1, 1] -> (n,) distances."""
        return self.net(a.float(), b.float()).flatten()


def unit_normalize(x: Tensor, eps: float = 1e-10) -> Tensor:
    """Each pixel's feature vector divided by its L2 norm over the channels (LPIPS's normalisation)."""
    return x / (x.pow(2).sum(dim=1, keepdim=True).sqrt() + eps)


class SegmenterFeatureDistance(nn.Module):
    """An LPIPS-style distance in a segmenter's feature space: NOT LPIPS, and not comparable with it.

    For each of the segmenter's feature maps: unit-normalise every pixel's channel vector, take the squared
    difference summed over channels (LPIPS with unit channel weights, no learned linear layers), average
    it over the map; the distance is the mean over the maps, so it lies in [0, 4]. Made for data where
    the ImageNet AlexNet is unavailable or meaningless (the synthetic landscapes): its numbers compare
    runs scored with the same segmenter weights (`record` holds their SHA-256), nothing else.

    Args:
        segmenter: a `Segmenter` whose network has `feature_maps(img)` (the landscape segmenter does).
    """

    def __init__(self, segmenter: Any) -> None:
        super().__init__()
        segmenter.feature_maps(torch.zeros(1, 3, 8, 8, device=_device_of(segmenter)))  # fails early if none
        self.segmenter = segmenter
        self.record = {
            "name": f"seg-feature-distance:{segmenter.spec.name}",
            "what": "LPIPS-style distance in the segmenter's feature maps (unit-normalised channels, squared "
            "difference summed over channels, spatial mean, mean over maps; no learned weights); NOT LPIPS",
            "segmenter": segmenter.spec.name,
            "weights_sha256": segmenter.record.get("weights_sha256"),
        }

    @torch.no_grad()
    def forward(self, a: Tensor, b: Tensor) -> Tensor:
        """a, b: (n, 3, H, W) in [-1, 1] -> (n,) distances."""
        fa, fb = self.segmenter.feature_maps(a), self.segmenter.feature_maps(b)
        per_map = [
            (unit_normalize(x) - unit_normalize(y)).pow(2).sum(dim=1).mean(dim=(1, 2))
            for x, y in zip(fa, fb, strict=True)
        ]
        return torch.stack(per_map).mean(dim=0)


def _device_of(segmenter: Any) -> torch.device:
    p = next(iter(segmenter.net.parameters()), None)
    return p.device if p is not None else torch.device("cpu")


def mean_pairwise(lpips: Callable[[Tensor, Tensor], Tensor], samples: Tensor) -> tuple[float, int]:
    """Sum over all pairs of one label map's samples (k, 3, H, W) -> (mean distance, number of pairs)."""
    pairs = list(itertools.combinations(range(len(samples)), 2))
    if not pairs:
        raise ValueError(f"diversity needs at least 2 samples per label map, got {len(samples)}")
    i, j = (torch.tensor(x) for x in zip(*pairs, strict=True))
    return float(lpips(samples[i], samples[j]).mean()), len(pairs)
