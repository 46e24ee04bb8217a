"""A small segmenter for the synthetic landscapes, trained here so the whole protocol runs with no download.

`LandscapeSegmenter` is a small three-level U-Net (widths w, 2w, 4w from a stride-2 stem; BatchNorm) that
labels a 64x64 landscape photo with the 9 landscape classes. `LandscapeRecipe` fixes everything about its
training: the images (the first `train_images` items of `SyntheticLandscapes(split='train', seed=data_seed)`,
rendered at `size`), batch, steps, Adam with a linearly decaying rate, horizontal flips, all drawn from one
seeded generator. `train_landscape_segmenter(recipe)` is deterministic on a given machine and torch build;
`landscape_segmenter(recipe)` caches the result under `cache_dir('segmenters')` keyed by the recipe, with a
JSON sidecar holding the recipe, the weights' SHA-256 and its mIoU on `val_images` real validation images.
`features` (per-channel mean and std of every encoder level) serve as a domain feature space for FID/KID on
the synthetic data, where the ImageNet Inception is unavailable or uninformative.
"""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import gin
import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from torch import Tensor, nn

from condgen.data.landscapes import CLASSES, landscape
from condgen.eval.fid import cache_key
from condgen.eval.miou import confusion_matrix, segmentation_scores
from condgen.weights import cache_dir, sha256_file

log = logging.getLogger("condgen.eval")


def _conv(in_ch: int, out_ch: int, stride: int = 1) -> list[nn.Module]:
    return [
        nn.Conv2d(in_ch, out_ch, 3, stride, padding=1, bias=False),
        nn.BatchNorm2d(out_ch),
        nn.ReLU(inplace=True),
    ]


class LandscapeSegmenter(nn.Module):
    """Image (b, 3, H, W) in [-1, 1] -> (b, num_classes, H, W) logits; H and W divisible by 8.

    A stride-2 stem, two more levels (max-pool, 2 convs each), a decoder with skips at 1/4 and 1/2, and
    logits bilinearly upsampled from 1/2 resolution.

    Args:
        num_classes: 9 landscape classes.
        width: channels of the first level (then 2x, 4x).
    """

    def __init__(self, num_classes: int = len(CLASSES), *, width: int = 16) -> None:
        super().__init__()
        w = width
        self.enc1 = nn.Sequential(*_conv(3, w, 2), *_conv(w, w))
        self.enc2 = nn.Sequential(*_conv(w, 2 * w), *_conv(2 * w, 2 * w))
        self.enc3 = nn.Sequential(*_conv(2 * w, 4 * w), *_conv(4 * w, 4 * w))
        self.dec2 = nn.Sequential(*_conv(6 * w, 2 * w))
        self.dec1 = nn.Sequential(*_conv(3 * w, w))
        self.head = nn.Conv2d(w, num_classes, 1)
        self.feature_dim = 2 * (w + 2 * w + 4 * w)

    def encode(self, img: Tensor) -> list[Tensor]:
        f1 = self.enc1(img)
        f2 = self.enc2(F.max_pool2d(f1, 2))
        return [f1, f2, self.enc3(F.max_pool2d(f2, 2))]

    def forward(self, img: Tensor) -> Tensor:
        f1, f2, f3 = self.encode(img)
        d2 = self.dec2(torch.cat([F.interpolate(f3, scale_factor=2.0, mode="nearest"), f2], 1))
        d1 = self.dec1(torch.cat([F.interpolate(d2, scale_factor=2.0, mode="nearest"), f1], 1))
        return F.interpolate(self.head(d1), size=img.shape[-2:], mode="bilinear", align_corners=False)

    def feature_maps(self, img: Tensor) -> list[Tensor]:
        """The three encoder levels' feature maps (1/2, 1/4, 1/8 resolution), for feature-space diversity."""
        return self.encode(img)

    def features(self, img: Tensor) -> Tensor:
        """(b, feature_dim): per-channel spatial mean and std of every encoder level (colour to layout)."""
        out = []
        for f in self.encode(img):
            out += [f.mean(dim=(2, 3)), f.std(dim=(2, 3))]
        return torch.cat(out, dim=1)


@gin.configurable
@dataclass(frozen=True)
class LandscapeRecipe:
    """Everything that determines the trained landscape segmenter (its cache key)."""

    size: int = 64  # square input size; the segmenter's `input_size`
    train_images: int = 1000  # SyntheticLandscapes train items 0..n-1, rendered once
    data_seed: int = 0  # SyntheticLandscapes.seed of those images
    steps: int = 1000
    batch_size: int = 16
    lr: float = 2e-3  # Adam, decayed linearly to 0
    width: int = 16
    seed: int = 0  # initialisation, batch order and flips
    val_images: int = 200  # real val items scored after training (the recorded upper bound)


def _render(recipe: LandscapeRecipe, n: int, split: str) -> tuple[Tensor, Tensor]:
    imgs, labels = [], []
    for i in range(n):
        scene = landscape(recipe.data_seed, i, recipe.size, recipe.size, split=split)
        imgs.append(torch.from_numpy(scene["image"]).permute(2, 0, 1))
        labels.append(torch.from_numpy(scene["label"].astype(np.int64)))
    return torch.stack(imgs).float() / 127.5 - 1, torch.stack(labels)


@torch.no_grad()
def score(net: nn.Module, imgs: Tensor, labels: Tensor, num_classes: int, batch: int = 50) -> dict:
    """mIoU and pixel accuracy of `net` on images (n, 3, H, W) against labels (n, H, W)."""
    net.eval()
    conf = torch.zeros(num_classes, num_classes, dtype=torch.long)
    for i in range(0, len(imgs), batch):
        pred = net(imgs[i : i + batch]).argmax(1)
        conf += confusion_matrix(pred, labels[i : i + batch], num_classes, ignore_index=None)
    return segmentation_scores(conf)


def train_landscape_segmenter(
    recipe: LandscapeRecipe | None = None, *, progress: bool = False
) -> tuple[LandscapeSegmenter, dict]:
    """Train from scratch with `recipe` (None: `LandscapeRecipe()` as gin binds it now); returns the network
    (eval mode) and its val scores.

    `progress`: a progress bar with the ETA on stderr (the default recipe takes minutes on a CPU)."""
    # made at call time: a default made at import would ignore later bindings and, since `import condgen`
    # imports this module, put LandscapeRecipe into every run's operative config.gin
    recipe = recipe or LandscapeRecipe()
    from tqdm.auto import tqdm

    t0 = time.perf_counter()
    imgs, labels = _render(recipe, recipe.train_images, "train")
    gen = torch.Generator().manual_seed(recipe.seed)
    with torch.random.fork_rng():
        torch.manual_seed(recipe.seed)
        net = LandscapeSegmenter(width=recipe.width)
    opt = torch.optim.Adam(net.parameters(), lr=recipe.lr)
    order, pos = torch.randperm(len(imgs), generator=gen), 0
    net.train()
    bar = tqdm(range(recipe.steps), desc="landscape segmenter", unit="step", disable=not progress,
               mininterval=1.0, dynamic_ncols=True)
    for step in bar:
        if pos + recipe.batch_size > len(order):
            order, pos = torch.randperm(len(imgs), generator=gen), 0
        idx = order[pos : pos + recipe.batch_size]
        pos += recipe.batch_size
        x, y = imgs[idx], labels[idx]
        flip = torch.rand(len(idx), generator=gen) < 0.5
        x = torch.where(flip[:, None, None, None], x.flip(-1), x)
        y = torch.where(flip[:, None, None], y.flip(-1), y)
        for group in opt.param_groups:
            group["lr"] = recipe.lr * (1 - step / recipe.steps)
        loss = F.cross_entropy(net(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    val = score(net, *_render(recipe, recipe.val_images, "val"), len(CLASSES))
    train_s = time.perf_counter() - t0
    return net.eval(), {
        "val_miou": val["miou"],
        "val_pixel_accuracy": val["pixel_accuracy"],
        "final_loss": loss.item(),
        "train_seconds": round(train_s, 1),
    }


def _cache_path(recipe: LandscapeRecipe, cache: str | Path | None = None) -> Path:
    root = Path(cache) if cache is not None else cache_dir("segmenters")
    return root / f"landscape_{recipe.size}px_{cache_key(**asdict(recipe))}.safetensors"


def cached_segmenter_path(recipe: LandscapeRecipe, cache: str | Path | None = None) -> Path | None:
    """Where the segmenter of `recipe` is cached, or None when it would have to be trained first."""
    path = _cache_path(recipe, cache)
    return path if path.is_file() and path.with_suffix(".json").is_file() else None


def _expected_time(recipe: LandscapeRecipe) -> str:
    """The default recipe's time (1000 steps: about 8 min on 2 CPU cores), scaled by its amount of work."""
    work = recipe.steps * recipe.batch_size * recipe.size**2 * recipe.width**2 / (1000 * 16 * 64**2 * 16**2)
    minutes = 8 * work
    return f"{minutes:.0f} min" if minutes >= 1 else f"{minutes * 60:.0f} s"


def landscape_segmenter(
    recipe: LandscapeRecipe | None = None, *, cache: str | Path | None = None
) -> tuple[LandscapeSegmenter, dict]:
    """The segmenter of `recipe` (None: `LandscapeRecipe()`) from the cache, trained (and cached) first when
    absent.

    Returns the network in eval mode and its record: recipe, weights path and SHA-256, val mIoU / accuracy.
    """
    recipe = recipe or LandscapeRecipe()
    path = _cache_path(recipe, cache)
    root, meta_path = path.parent, path.with_suffix(".json")
    if not (path.is_file() and meta_path.is_file()):
        # the first segmenter-feature evaluation on a machine: minutes of silence without this and the bar
        log.warning(
            "training the landscape segmenter once: %d steps of %d images at %d px, about %s on 2 CPU "
            "cores (the bar below shows the ETA); cached at %s, later evaluations load it (%s)",
            recipe.steps, recipe.batch_size, recipe.size, _expected_time(recipe), path, recipe,
        )
        net, scores = train_landscape_segmenter(recipe, progress=True)
        log.warning("trained the landscape segmenter in %.0f s (val mIoU %.3f)", scores["train_seconds"],
                    scores["val_miou"])
        root.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(tmp))
        os.replace(tmp, path)
        meta = {"recipe": asdict(recipe), **scores, "torch": torch.__version__}
        meta_path.write_text(json.dumps(meta, indent=1) + "\n")
    meta = json.loads(meta_path.read_text())
    net = LandscapeSegmenter(width=recipe.width)
    net.load_state_dict(load_file(str(path)))
    meta.update(weights_path=str(path), weights_sha256=sha256_file(path))
    return net.eval(), meta
