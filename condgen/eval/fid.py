"""FID and KID from feature sets, and the on-disk cache of real-image features.

FID (Heusel et al. 2017): the Frechet distance between Gaussians fitted to two feature sets,
`|mu1 - mu2|^2 + tr(S1 + S2 - 2 (S1 S2)^1/2)`, computed by torch-fidelity (float64, trace of the square root
from the eigenvalues of S1 S2). KID (Binkowski et al. 2018): the unbiased MMD^2 with the cubic polynomial
kernel `(x.y / d + 1)^3`, averaged over random subsets, also torch-fidelity's. Unlike torch-fidelity's
default, the subset size is capped at the number of images (500 Cityscapes images would fail its 1000).
Real features are cached per (dataset, split, resolution, resize filter, feature network and weights, count).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from condgen.weights import cache_dir

KID_SUBSETS = 100
KID_SUBSET_SIZE = 1000


def to_uint8(img: Tensor) -> Tensor:
    """Images in [-1, 1] -> uint8 [0, 255], rounded as when saved to PNG (so files and tensors agree)."""
    return ((img.detach().float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)


def feature_statistics(features: np.ndarray | Tensor) -> tuple[np.ndarray, np.ndarray]:
    """(n, d) features -> mean (d,) and unbiased covariance (d, d), float64."""
    feats = np.asarray(features.cpu() if isinstance(features, Tensor) else features, dtype=np.float64)
    if feats.ndim != 2 or feats.shape[0] < 2:
        raise ValueError(f"need an (n >= 2, d) feature array for FID statistics, got shape {feats.shape}")
    return feats.mean(axis=0), np.cov(feats, rowvar=False)


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray) -> float:
    """Frechet distance between N(mu1, sigma1) and N(mu2, sigma2) (torch-fidelity's implementation)."""
    from torch_fidelity.metric_fid import fid_statistics_to_metric

    stats = [
        {"mu": np.asarray(m, np.float64), "sigma": np.atleast_2d(np.asarray(s, np.float64))}
        for m, s in ((mu1, sigma1), (mu2, sigma2))
    ]
    if stats[0]["mu"].shape != stats[1]["mu"].shape or stats[0]["sigma"].shape != stats[1]["sigma"].shape:
        raise ValueError(
            f"FID statistics differ in shape: mu {stats[0]['mu'].shape} vs {stats[1]['mu'].shape}, "
            f"sigma {stats[0]['sigma'].shape} vs {stats[1]['sigma'].shape} (features of different networks?)"
        )
    return float(fid_statistics_to_metric(*stats, verbose=False)["frechet_inception_distance"])


def fid_from_features(real: np.ndarray | Tensor, fake: np.ndarray | Tensor) -> float:
    """FID between two (n, d) feature sets."""
    return frechet_distance(*feature_statistics(real), *feature_statistics(fake))


def kid_from_features(
    real: np.ndarray | Tensor,
    fake: np.ndarray | Tensor,
    *,
    subsets: int = KID_SUBSETS,
    subset_size: int = KID_SUBSET_SIZE,
    seed: int = 0,
) -> dict[str, float]:
    """KID mean and std over `subsets` random subsets of min(subset_size, n_real, n_fake) images each.

    Returns `kid_mean`, `kid_std`, `kid_subsets` and the `kid_subset_size` actually used.
    """
    from torch_fidelity.metric_kid import kid_features_to_metric

    a, b = (
        torch.as_tensor(np.asarray(x.cpu() if isinstance(x, Tensor) else x, np.float64)) for x in (real, fake)
    )
    size = min(subset_size, len(a), len(b))
    if size < 2:
        raise ValueError(f"KID needs at least 2 images per set, got {len(a)} real and {len(b)} generated")
    out = kid_features_to_metric(
        a,
        b,
        kid_subsets=subsets,
        kid_subset_size=size,
        kid_kernel="poly",
        kid_kernel_poly_degree=3,
        kid_kernel_poly_gamma=None,
        kid_kernel_poly_coef0=1,
        rng_seed=seed,
        verbose=False,
    )
    return {
        "kid_mean": out["kernel_inception_distance_mean"],
        "kid_std": out["kernel_inception_distance_std"],
        "kid_subsets": subsets,
        "kid_subset_size": size,
    }


# ------------------------------------------------------------------------------ the real-feature cache
def cache_key(**fields: Any) -> str:
    """A short stable hash of the protocol fields that determine a set of real features."""
    text = json.dumps(fields, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def cache_path(fields: dict[str, Any], root: str | Path | None = None) -> Path:
    """Where the real features for `fields` live: `<root or cache_dir('stats')>/<names>_<hash>.npz`."""
    root = Path(root) if root is not None else cache_dir("stats")
    name = "_".join(str(fields.get(k, "")) for k in ("dataset", "split", "resolution", "extractor"))
    return root / f"{_safe(name)}_{cache_key(**fields)}.npz"


def cached_features(
    fields: dict[str, Any], compute: Callable[[], np.ndarray], *, root: str | Path | None = None
) -> tuple[np.ndarray, Path, bool]:
    """Real features for `fields` from the cache, or `compute()`d and stored atomically.

    Returns (features, cache file, whether it was a cache hit). The file's sidecar JSON holds the fields.
    """
    path = cache_path(fields, root)
    if path.is_file():
        with np.load(path) as data:
            return data["features"], path, True
    features = np.asarray(compute(), dtype=np.float64)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp.npz")
    np.savez(tmp, features=features)
    os.replace(tmp, path)
    path.with_suffix(".json").write_text(json.dumps(fields, indent=1, sort_keys=True, default=str) + "\n")
    return features, path, False


def _safe(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "-" for c in text)[:120]
