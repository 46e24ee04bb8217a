"""VGG19 perceptual loss (pix2pixHD / SPADE `VGGLoss`; CC-FPSE's L_P, Sec. 3.3).

`sum_i w_i * L1(vgg_i(fake), vgg_i(real))` at relu1_1 .. relu5_1 with w = 1/32, 1/16, 1/8, 1/4, 1 and the
images fed in [-1, 1] without ImageNet normalisation, exactly as the official code. Only torchvision VGG19
layers 0..29 are built (12.94M frozen parameters). Weights come from a local file, never downloaded while
loading: `weights=` (e.g. the official CC-FPSE `checkpoints/vgg19.pth`) or torchvision's cache file, the
declared `VGG19` (`condgen weights fetch vgg19` puts it there). The real branch runs without autograd.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from condgen.registry import register
from condgen.weights import WeightFile, declare

VGG19_FILE = "vgg19-dcbb9e9d.pth"  # what torchvision's VGG19_Weights.IMAGENET1K_V1 downloads
VGG19_URL = f"https://download.pytorch.org/models/{VGG19_FILE}"
VGG19 = declare(
    WeightFile(
        "VGG19 perceptual loss: torchvision VGG19 (ImageNet, IMAGENET1K_V1)",
        (VGG19_FILE,),
        VGG19_URL,
        "dcbb9e9d",  # torch.hub's convention: the file name carries the first 8 hex digits of its SHA-256
        size="≈ 548 MB",
        name="vgg19",
        used_by="vgg_loss",
    )
)
# torchvision vgg19 `features` up to conv5_1 (index 28) and its ReLU (29); "M" = 2x2 max pool
_LAYERS = (64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512)
_SLICE_ENDS = (2, 7, 12, 21, 30)  # outputs relu1_1, relu2_1, relu3_1, relu4_1, relu5_1
LAYER_WEIGHTS = (1 / 32, 1 / 16, 1 / 8, 1 / 4, 1.0)


def default_vgg19_path() -> Path:
    """torchvision's cache location of the ImageNet VGG19 weights (honours $TORCH_HOME)."""
    return VGG19.destination()


class VGG19Features(nn.Module):
    """Frozen torchvision VGG19 `features[:30]`, returning the 5 relu*_1 activations.

    Module indices equal torchvision's, so a vgg19 state_dict's `features.N.*` keys load directly.
    """

    def __init__(self) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        in_ch = 3
        for spec in _LAYERS:
            if spec == "M":
                layers.append(nn.MaxPool2d(2, 2))
            else:
                layers += [nn.Conv2d(in_ch, spec, 3, padding=1), nn.ReLU(inplace=True)]
                in_ch = spec
        self.features = nn.Sequential(*layers)
        self.requires_grad_(False)
        self.eval()

    def load_torchvision(self, path: Path) -> None:
        """Load a torchvision vgg19 state_dict (full model, or `features` only) strictly for layers 0..29."""
        sd = torch.load(path, map_location="cpu", weights_only=True)
        sd = {k.removeprefix("features."): v for k, v in sd.items() if not k.startswith("classifier.")}
        wanted = self.features.state_dict()
        missing = sorted(set(wanted) - set(sd), key=lambda k: int(k.split(".")[0]))
        if missing:
            raise ValueError(
                f"{path} is not a torchvision vgg19 state_dict: it lacks {', '.join(missing)} "
                f"(expected keys 'features.0.weight' .. 'features.28.bias', as in {VGG19_FILE})"
            )
        self.features.load_state_dict({k: sd[k] for k in wanted}, strict=True)

    def train(self, mode: bool = True) -> VGG19Features:
        return super().train(False)  # a frozen feature extractor: never in training mode

    def forward(self, x: Tensor) -> list[Tensor]:
        """x: (b, 3, H, W) -> [relu1_1 (64, H), relu2_1 (128, H/2), relu3_1 (256, H/4), relu4_1 (512, H/8),
        relu5_1 (512, H/16)]."""
        out, start = [], 0
        for end in _SLICE_ENDS:
            x = self.features[start:end](x)
            out.append(x)
            start = end
        return out


@register("loss")
class VGGLoss(nn.Module):
    """VGG19 perceptual loss with the official layers, weights and input range.

    Args:
        weights: a torchvision vgg19 state_dict file (official CC-FPSE: `checkpoints/vgg19.pth`); default
            torch.hub's `checkpoints/vgg19-dcbb9e9d.pth`. Missing weights are an error naming the
            `condgen weights fetch vgg19` command, never a download.
        random_init: skip loading and keep random weights. For tests only: the loss is then meaningless for
            training.
        layer_weights: per-layer factors for relu1_1 .. relu5_1 (official 1/32, 1/16, 1/8, 1/4, 1).
    """

    def __init__(
        self,
        *,
        weights: str | Path | None = None,
        random_init: bool = False,
        layer_weights: tuple[float, ...] = LAYER_WEIGHTS,
    ) -> None:
        super().__init__()
        if len(layer_weights) != len(_SLICE_ENDS):
            raise ValueError(f"layer_weights needs {len(_SLICE_ENDS)} values, got {len(layer_weights)}")
        self.layer_weights = tuple(layer_weights)
        self.vgg = VGG19Features()
        if not random_init:
            self.vgg.load_torchvision(_find_weights(weights))

    def forward(self, fake: Tensor, real: Tensor) -> Tensor:
        """fake, real: (b, 3, H, W) in [-1, 1] (not ImageNet-normalised, as official) -> 0-dim tensor.

        Gradients flow into `fake` only; VGG's own parameters are frozen.
        """
        with torch.no_grad():
            real_feats = self.vgg(real)
        fake_feats = self.vgg(fake)
        terms = [
            w * F.l1_loss(f, r) for w, f, r in zip(self.layer_weights, fake_feats, real_feats, strict=True)
        ]
        return torch.stack(terms).sum()


def _find_weights(weights: str | Path | None) -> Path:
    """The given file (any serialisation of the weights, such as the official CC-FPSE `checkpoints/vgg19.pth`:
    not hash-checked, loaded strictly by keys), else torchvision's cache file checked against its digest."""
    return VGG19.resolve(weights, check=weights is None)
