"""Feature extractors of the newer metrics: DINOv2 ViT-L/14 (FD-DINOv2) and CLIP ViT-L/14@336px (CMMD).

Both take uint8 (b, 3, H, W) images, resize them as the protocol's `resize` mode says (eval/resize.py),
normalise them as the network was trained, and return float64 (b, d) features. CLIP is torch-fidelity 0.4's
own vision tower (`feature_extractor_clip.CLIPVisual`), built from the OpenAI file as torch-fidelity does.
DINOv2 is our own ViT with the official checkpoint's key names: torch-fidelity's `dinov2-vit-l-14` calls
`torch.hub.load("facebookresearch/dinov2")`, which needs the network; preprocessing (TF1 bilinear to 224,
ImageNet mean / std, the final-norm class token) follows torch-fidelity's extractor.

`random_weights=True` builds each network at reduced width and depth with seeded random weights, so tests run
the whole path in well under a second; such features are meaningless and the metrics file says so.
"""

from __future__ import annotations

import math
import warnings

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn

from condgen.eval.resize import check_resize, resize_images
from condgen.weights import WeightFile, declare, sha256_file

DINOV2_VITL14 = declare(
    WeightFile(
        what="DINOv2 ViT-L/14 (FD-DINOv2, Stein et al. 2023; torch-fidelity 'dinov2-vit-l-14')",
        filenames=("dinov2_vitl14_pretrain.pth",),
        url="https://dl.fbaipublicfiles.com/dinov2/dinov2_vitl14/dinov2_vitl14_pretrain.pth",
        sha256=None,  # Meta publishes no digest; the file's digest is recorded with every score
        env="CONDGEN_DINOV2",
        size="≈ 1.2 GB",
        name="dinov2_vitl14",
        used_by="fd_dinov2",
    )
)
_CLIP_SHA = "3035c92b350959924f9f00213499208652fc7ea050643e8b385c2dac08641f02"
CLIP_VITL14_336 = declare(
    WeightFile(
        what="CLIP ViT-L/14@336px image tower (CMMD, Jayasumana et al. 2024; torch-fidelity "
        "clip-vit-l-14-336px)",
        filenames=(f"clip-vit-l-14-336px-{_CLIP_SHA}.pt", "ViT-L-14-336px.pt"),
        url=f"https://openaipublic.azureedge.net/clip/models/{_CLIP_SHA}/ViT-L-14-336px.pt",
        sha256=_CLIP_SHA,  # OpenAI's URL carries the file's SHA-256
        env="CONDGEN_CLIP",
        size="≈ 891 MB",
        name="clip_vitl14_336",
        used_by="cmmd",
    )
)


class ImageFeatures(nn.Module):
    """Base of the extractors: uint8 images -> resize -> normalise -> network -> float64 features.

    Subclasses set `name`, `dim`, `input_size`, `mean`, `std` (on the 0..255 scale) and `self.net`.
    """

    name: str
    dim: int
    input_size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]

    def _weights_record(self, path: object, random_weights: bool, seed: int) -> None:
        self.random_weights = random_weights
        self.weights_path = None if random_weights else str(path)
        self.weights_sha256 = f"random(seed={seed}, reduced size)" if random_weights else sha256_file(path)

    def train(self, mode: bool = True) -> ImageFeatures:
        return super().train(False)

    def record(self) -> dict:
        """What the metrics file says about this extractor."""
        return {
            "name": self.name,
            "weights_sha256": self.weights_sha256,
            "input_size": [self.input_size, self.input_size],
            "resize": self.resize,
        }

    @torch.no_grad()
    def forward(self, img: Tensor) -> Tensor:
        """img: (b, 3, H, W) uint8 RGB, any size. Returns (b, dim) float64."""
        if img.dtype != torch.uint8:
            raise TypeError(f"{type(self).__name__} takes uint8 images (use to_uint8), got {img.dtype}")
        x = resize_images(img, (self.input_size, self.input_size), self.resize)
        mean, std = (
            torch.tensor(v, dtype=x.dtype, device=x.device).view(1, 3, 1, 1) for v in (self.mean, self.std)
        )
        return self.net((x - mean) / std).double()


# ---------------------------------------------------------------------------------------------- DINOv2
class _Block(nn.Module):
    """Pre-norm ViT block with LayerScale (DINOv2's blocks.N: norm1, attn, ls1, norm2, mlp, ls2)."""

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.norm1, self.norm2 = nn.LayerNorm(dim, eps=1e-6), nn.LayerNorm(dim, eps=1e-6)
        self.attn = nn.Module()
        self.attn.qkv, self.attn.proj = nn.Linear(dim, 3 * dim), nn.Linear(dim, dim)
        self.mlp = nn.Module()
        self.mlp.fc1, self.mlp.fc2 = nn.Linear(dim, 4 * dim), nn.Linear(4 * dim, dim)
        self.ls1, self.ls2 = nn.Module(), nn.Module()
        self.ls1.gamma, self.ls2.gamma = nn.Parameter(torch.ones(dim)), nn.Parameter(torch.ones(dim))

    def forward(self, x: Tensor) -> Tensor:
        q, k, v = rearrange(
            self.attn.qkv(self.norm1(x)), "b n (three h d) -> three b h n d", three=3, h=self.heads
        )
        a = rearrange(F.scaled_dot_product_attention(q, k, v), "b h n d -> b n (h d)")
        x = x + self.ls1.gamma * self.attn.proj(a)
        return x + self.ls2.gamma * self.mlp.fc2(F.gelu(self.mlp.fc1(self.norm2(x))))


class DINOv2ViT(nn.Module):
    """DINOv2 ViT (no registers) with the keys of `dinov2_vit*14_pretrain.pth`; returns the normed CLS token.

    Args:
        dim, depth, heads: 1024, 24, 16 for ViT-L/14.
        grid: side of the learned position grid (37: the 518 px pretraining size / 14).
    """

    def __init__(
        self, dim: int = 1024, depth: int = 24, heads: int = 16, *, patch: int = 14, grid: int = 37
    ) -> None:
        super().__init__()
        self.patch = patch
        self.patch_embed = nn.Module()
        self.patch_embed.proj = nn.Conv2d(3, dim, patch, stride=patch)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.mask_token = nn.Parameter(torch.zeros(1, dim))  # unused at inference; part of the checkpoint
        self.pos_embed = nn.Parameter(torch.zeros(1, grid * grid + 1, dim))
        self.blocks = nn.ModuleList(_Block(dim, heads) for _ in range(depth))
        self.norm = nn.LayerNorm(dim, eps=1e-6)

    @staticmethod
    def sizes(state: dict[str, Tensor]) -> dict[str, int]:
        """dim, depth, heads (64 channels each, as every DINOv2 ViT), grid of a checkpoint's state dict."""
        dim = state["cls_token"].shape[-1]
        depth = len({k.split(".")[1] for k in state if k.startswith("blocks.")})
        grid = math.isqrt(state["pos_embed"].shape[1] - 1)
        return {
            "dim": dim,
            "depth": depth,
            "heads": dim // 64,
            "patch": state["patch_embed.proj.weight"].shape[-1],
            "grid": grid,
        }

    def pos_embed_for(self, h: int, w: int) -> Tensor:
        """Position embeddings for an (h, w) patch grid (official bicubic rescale, offset 0.1)."""
        cls, grid = self.pos_embed[:, :1], self.pos_embed[:, 1:]
        m = math.isqrt(grid.shape[1])
        if (h, w) == (m, m):
            return self.pos_embed
        grid = rearrange(grid.float(), "1 (y x) d -> 1 d y x", y=m)
        grid = F.interpolate(
            grid, scale_factor=((h + 0.1) / m, (w + 0.1) / m), mode="bicubic", antialias=False
        )
        if grid.shape[-2:] != (h, w):
            raise RuntimeError(f"position grid {tuple(grid.shape[-2:])} for a {h}x{w} patch grid")
        return torch.cat([cls, rearrange(grid, "1 d y x -> 1 (y x) d").to(cls.dtype)], dim=1)

    def forward(self, x: Tensor) -> Tensor:
        """x: (b, 3, H, W) normalised, H and W multiples of the patch size. Returns (b, dim)."""
        x = self.patch_embed.proj(x)
        h, w = x.shape[-2:]
        x = torch.cat([self.cls_token.expand(len(x), -1, -1), rearrange(x, "b d y x -> b (y x) d")], dim=1)
        x = x + self.pos_embed_for(h, w)
        for block in self.blocks:
            x = block(x)
        return self.norm(x)[:, 0]


class DINOv2Features(ImageFeatures):
    """DINOv2 ViT-L/14 CLS features (1024-d) at 224x224, as torch-fidelity's `dinov2-vit-l-14`.

    Args:
        weights: path of dinov2_vitl14_pretrain.pth (default: $CONDGEN_DINOV2, then torch.hub's checkpoints).
        random_weights: a reduced (64-wide, 2-deep) network with seeded random weights: tests only.
        resize: 'legacy_tf' (torch-fidelity's, default) or 'clean' (see condgen/eval/resize.py).
    """

    name = "dinov2-vit-l-14"
    input_size = 224
    mean = (255 * 0.485, 255 * 0.456, 255 * 0.406)
    std = (255 * 0.229, 255 * 0.224, 255 * 0.225)

    def __init__(
        self,
        *,
        weights: str | None = None,
        random_weights: bool = False,
        seed: int = 0,
        resize: str = "legacy_tf",
    ) -> None:
        super().__init__()
        self.resize = check_resize(resize)
        path = None if random_weights else DINOV2_VITL14.resolve(weights)
        if path is None:
            with torch.random.fork_rng():
                torch.manual_seed(seed)
                self.net = DINOv2ViT(64, 2, 2)
                for p in (self.net.cls_token, self.net.pos_embed):
                    nn.init.normal_(p, std=0.02)
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
            with torch.device("meta"):  # sizes from the file (as torch-fidelity builds CLIP); filled below
                self.net = DINOv2ViT(**DINOv2ViT.sizes(state))
            self.net.load_state_dict(state, strict=True, assign=True)
        self.dim = self.net.norm.normalized_shape[0]
        self._weights_record(path, random_weights, seed)
        self.net.requires_grad_(False).eval()


# ------------------------------------------------------------------------------------------------- CLIP
class CLIPFeatures(ImageFeatures):
    """CLIP ViT-L/14@336px image embeddings (768-d, not L2-normalised) from torch-fidelity's CLIP tower.

    Args:
        weights: path of the OpenAI ViT-L-14-336px.pt (default: $CONDGEN_CLIP, then torch.hub's checkpoints,
            where torch-fidelity keeps it).
        random_weights: a reduced (64-wide, 2-deep) tower with seeded random weights: tests only.
        resize: 'torch_bicubic' (the CMMD authors' path, default), 'clean' or 'legacy_tf' (torch-fidelity's).
    """

    name = "clip-vit-l-14-336px"
    input_size = 336
    mean = (255 * 0.48145466, 255 * 0.4578275, 255 * 0.40821073)
    std = (255 * 0.26862954, 255 * 0.26130258, 255 * 0.27577711)

    def __init__(
        self,
        *,
        weights: str | None = None,
        random_weights: bool = False,
        seed: int = 0,
        resize: str = "torch_bicubic",
    ) -> None:
        super().__init__()
        from torch_fidelity.feature_extractor_clip import CLIPVisual, build_model

        self.resize = check_resize(resize)
        if random_weights:
            path = None
            with torch.random.fork_rng():
                torch.manual_seed(seed)
                model = CLIPVisual(768, self.input_size, 2, 64, 14)  # embed 768, 2 layers of width 64
        else:
            path = CLIP_VITL14_336.resolve(weights)
            # OpenAI ships a TorchScript archive; torch.jit.load reads tensors and TorchScript code, not
            # arbitrary pickled Python objects. torch-fidelity's own builder makes the vision tower from it.
            with (
                warnings.catch_warnings()
            ):  # torch 2.14 marks torch.jit deprecated; the file format is what it is
                warnings.simplefilter("ignore", FutureWarning)
                state = torch.jit.load(str(path), map_location="cpu").state_dict()
            model = build_model(dict(state), torch.float32)
        self.net = model.visual
        self.dim = self.net.output_dim
        self._weights_record(path, random_weights, seed)
        self.net.requires_grad_(False).eval()
