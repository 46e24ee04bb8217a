"""Diversity of multi-modal models: mean pairwise LPIPS between samples of the same label map.

As OASIS and SDM report it: for each label map, `n` samples with different latents; LPIPS (Zhang et al. 2018,
v0.1, AlexNet backbone, the `lpips` package) between every pair; the mean over pairs and maps. The linear
calibration layers ship inside the `lpips` package; the AlexNet backbone is torchvision's ImageNet file,
which `lpips` would download: here it is found offline (torch.hub's checkpoint folder or a path), its
SHA-256 prefix checked, and loaded into the backbone. `random_weights=True` keeps a seeded random backbone,
for tests only (the numbers are then meaningless).
"""

from __future__ import annotations

import itertools
import warnings
from pathlib import Path

import torch
from torch import Tensor, nn

from condgen.eval.weights import WeightFile, sha256_file

ALEXNET = WeightFile(
    what="LPIPS backbone: torchvision AlexNet (ImageNet, IMAGENET1K_V1)",
    filenames=("alexnet-owt-7be5be79.pth",),
    url="https://download.pytorch.org/models/alexnet-owt-7be5be79.pth",
    sha256="7be5be79",  # torch.hub's convention: the file name carries the first 8 hex digits of its SHA-256
    env="CONDGEN_ALEXNET",
    size="≈ 233 MB",
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


def mean_pairwise(lpips: LPIPS, samples: Tensor) -> tuple[float, int]:
    """Sum over all pairs of one label map's samples (k, 3, H, W) -> (mean distance, number of pairs)."""
    pairs = list(itertools.combinations(range(len(samples)), 2))
    if not pairs:
        raise ValueError(f"diversity needs at least 2 samples per label map, got {len(samples)}")
    i, j = (torch.tensor(x) for x in zip(*pairs, strict=True))
    return float(lpips(samples[i], samples[j]).mean()), len(pairs)
