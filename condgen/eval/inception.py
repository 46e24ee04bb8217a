"""The FID Inception-v3: the TF 2015-12-05 graph ported to PyTorch, run through torch-fidelity.

This is the network behind pytorch-fid (what the SPADE authors used, SPADE #14), OASIS and torch-fidelity;
both projects publish the same file (SHA-256 6726825d...). torch-fidelity's `FeatureExtractorInceptionV3`
does the TF1-compatible bilinear resize to 299x299 and returns the 2048-d pool3 features. Its own loader
would download the file when none is given and unpickles it; here the file is found offline, checked, read
with `weights_only=True` and handed over, so nothing is ever fetched. `random_weights=True` builds the same
network with seeded random weights: for tests only, its FIDs are meaningless (the metrics file says so).
"""

from __future__ import annotations

from typing import Any
from unittest import mock

import torch
from torch import Tensor, nn

from condgen.weights import WeightFile, declare, sha256_file

INCEPTION = declare(
    WeightFile(
        what="FID Inception-v3 (TF inception-2015-12-05, pytorch-fid / torch-fidelity port)",
        filenames=("weights-inception-2015-12-05-6726825d.pth", "pt_inception-2015-12-05-6726825d.pth"),
        url="https://github.com/toshas/torch-fidelity/releases/download/v0.2.0/"
        "weights-inception-2015-12-05-6726825d.pth",
        sha256="6726825d0af5f729cebd5821db510b11b1cfad8faad88a03f1befd49fb9129b2",
        env="CONDGEN_INCEPTION",
        size="≈ 92 MB",
        name="inception",
        used_by="fid",
    )
)
_RANDOM = object()  # stands for "keep the random initialisation" inside torch-fidelity's constructor


def _extractor_class() -> type[nn.Module]:
    import torch_fidelity.feature_extractor_inceptionv3 as fe

    class _InceptionV3(fe.FeatureExtractorInceptionV3):
        def load_state_dict(self, state_dict: Any, strict: bool = True, assign: bool = False) -> Any:
            if state_dict is _RANDOM:
                return None
            return super().load_state_dict(state_dict, strict=strict, assign=assign)

    return _InceptionV3


class InceptionFeatures(nn.Module):
    """uint8 images (b, 3, H, W) -> (b, 2048) float64 pool3 features of the FID Inception.

    Args:
        weights: path of the weights file; default: $CONDGEN_INCEPTION, then torch.hub's checkpoint folder.
        random_weights: seeded random weights instead of the file (tests only; numbers are meaningless).
        seed: seed of the random weights.
    """

    name = "inception-v3-compat"
    dim = 2048

    def __init__(self, *, weights: str | None = None, random_weights: bool = False, seed: int = 0) -> None:
        super().__init__()
        import torch_fidelity.feature_extractor_inceptionv3 as fe

        if random_weights:
            state: Any = _RANDOM
            self.weights_sha256 = f"random(seed={seed})"
            self.weights_path = None
        else:
            path = INCEPTION.resolve(weights)
            state = torch.load(path, map_location="cpu", weights_only=True)
            self.weights_sha256, self.weights_path = sha256_file(path), str(path)
        self.random_weights = random_weights

        def refuse_download(*args: Any, **kwargs: Any) -> Any:
            return state  # torch-fidelity's "download" returns the already-verified (or random) weights

        with mock.patch.object(fe, "load_state_dict_from_url", refuse_download), torch.random.fork_rng():
            torch.manual_seed(seed)
            self.net = _extractor_class()("inception-v3-compat", ["2048"])
            if random_weights:
                _informative_init(self.net)
        self.net.requires_grad_(False).eval()

    def train(self, mode: bool = True) -> InceptionFeatures:
        return super().train(False)  # BN running statistics are part of the published network

    @torch.no_grad()
    def forward(self, img: Tensor) -> Tensor:
        """img: (b, 3, H, W) uint8 RGB, any size (resized to 299x299 inside). Returns (b, 2048) float64."""
        if img.dtype != torch.uint8:
            raise TypeError(f"InceptionFeatures takes uint8 images (use to_uint8), got {img.dtype}")
        (feats,) = self.net(img)
        return feats.double()


def _informative_init(net: nn.Module) -> None:
    """He-normal convs and identity BN, so random features keep unit scale through 90+ layers.

    With PyTorch's default init the pool3 features of a random Inception shrink to ~1e-8 and every FID is 0.
    """
    for m in net.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
