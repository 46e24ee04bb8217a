"""The VAE style encoder (SPADE, Sec. 3.3 and appendix Fig. 14; official `ConvEncoder`).

Image -> (mu, logvar) of the latent the generator's `fc` reads. Official structure and key names: `layer1..6`,
each a stride-2 3x3 spectral-norm conv without bias (`layerN.0`) + InstanceNorm(affine=False), LeakyReLU(0.2)
between layers and after the last, flatten, then `fc_mu` / `fc_var`.

Input policy. The official encoder resizes every image to 256x256 (bilinear) and hard-codes a 4x4 map before
`fc`, so it crashes below crop 256. Here the encoder has a working size, and an image of any other size is
bilinearly resized to it first (as officially):
- default: the configured image size (crop_size / aspect_ratio high, crop_size wide), so 32, 64, 128 or
  256x512 images are encoded unsquashed;
- `official_resize=True`: 256x256, the official encoder exactly for every crop >= 256 (Cityscapes squashed).
The number of stride-2 layers is the most (up to 6) that leaves the map at least 4 pixels on its short side,
and `fc` is sized from the final map: 6 layers and 4x4 at 256, as officially; 5 at 128, 3 at 32. So at
crop 256, aspect 1 both policies are the official encoder, and official checkpoints load by key.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from condgen.blocks.norm import spectral_norm
from condgen.networks.init import init_weights
from condgen.registry import register

OFFICIAL_SIZE = 256  # the official encoder's working size
MIN_MAP = 4  # smallest side of the last map: the official 4x4 at 256 (InstanceNorm needs > 1 pixel)


def _halve(n: int) -> int:
    """Output size of a 3x3, stride-2, pad-1 conv."""
    return math.ceil(n / 2)


def reparameterize(mu: Tensor, logvar: Tensor) -> Tensor:
    """z = mu + eps * exp(0.5 logvar), eps ~ N(0, I) (official `Pix2PixModel.reparameterize`)."""
    std = torch.exp(0.5 * logvar)
    eps = torch.randn_like(std)
    return eps.mul(std) + mu


@register("encoder")
class VAEEncoder(nn.Module):
    """Style encoder: image (b, 3, H, W) in [-1, 1] -> (mu, logvar), each (b, z_dim).

    Args:
        ngf: base width (official `ndf` = the generator's `ngf`); widths 1, 2, 4, 8, 8, 8 x ngf.
        z_dim: latent size (official: hard-coded 256).
        crop_size: image width the data pipeline yields.
        aspect_ratio: width / height of the images.
        official_resize: work at 256x256 like the official code instead of at the configured image size
            (needed to load official encoders trained on non-square crops, e.g. Cityscapes).
    """

    OFFICIAL_RENAMES: dict[str, str | None] = {}  # module names are the official ones

    def __init__(
        self,
        *,
        ngf: int = 64,
        z_dim: int = 256,
        crop_size: int = 256,
        aspect_ratio: float = 1.0,
        official_resize: bool = False,
    ) -> None:
        super().__init__()
        if official_resize:
            self.size = (OFFICIAL_SIZE, OFFICIAL_SIZE)
        else:
            self.size = (round(crop_size / aspect_ratio), crop_size)
        if min(self.size) < 2 * MIN_MAP:
            raise ValueError(
                f"VAEEncoder needs images of at least {2 * MIN_MAP} pixels a side; crop_size={crop_size}, "
                f"aspect_ratio={aspect_ratio} give {self.size[0]}x{self.size[1]}"
            )
        sh, sw = self.size
        num_layers = 0
        while num_layers < 6 and min(_halve(sh), _halve(sw)) >= MIN_MAP:
            sh, sw, num_layers = _halve(sh), _halve(sw), num_layers + 1
        self.num_layers = num_layers
        widths = [3] + [ngf * m for m in (1, 2, 4, 8, 8, 8)]
        for i in range(num_layers):
            conv = spectral_norm(nn.Conv2d(widths[i], widths[i + 1], 3, stride=2, padding=1, bias=False))
            norm = nn.InstanceNorm2d(widths[i + 1], affine=False)
            self.add_module(f"layer{i + 1}", nn.Sequential(conv, norm))
        flat = widths[num_layers] * sh * sw
        self.fc_mu = nn.Linear(flat, z_dim)
        self.fc_var = nn.Linear(flat, z_dim)
        init_weights(self)

    def forward(self, img: Tensor) -> tuple[Tensor, Tensor]:
        """img: (b, 3, H, W); resized (bilinear) to `self.size` unless already that size."""
        if tuple(img.shape[-2:]) != self.size:
            img = F.interpolate(img, size=self.size, mode="bilinear", align_corners=False)
        x = img
        for i in range(1, self.num_layers + 1):
            if i > 1:
                x = F.leaky_relu(x, 0.2)
            x = getattr(self, f"layer{i}")(x)
        x = F.leaky_relu(x, 0.2).flatten(1)
        return self.fc_mu(x), self.fc_var(x)
