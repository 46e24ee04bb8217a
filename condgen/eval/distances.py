"""Distances between two feature sets beyond FID/KID: CMMD, precision / recall, density / coverage.

- CMMD (Jayasumana et al., CVPR 2024): the biased (minimum-variance) MMD^2 estimator, Gaussian RBF kernel
  exp(-|a - b|^2 / (2 sigma^2)), sigma 10, times 1000, on L2-normalised CLIP embeddings; every mean includes
  the diagonal, as the authors' code does. Computed in float64: the three means nearly cancel, and float32
  loses the 4th significant digit.
- Precision / recall (Kynkaanniemi et al., NeurIPS 2019): the share of generated samples inside some real
  sample's k-NN ball, and of real samples inside some generated sample's ball; as torch-fidelity computes
  them (balls include the boundary; the k-th neighbour does not count the point itself).
- Density / coverage (Naeem et al., ICML 2020): density counts, per generated sample, the real k-NN balls
  holding it, divided by k and the number of generated samples; coverage is the share of real samples whose
  ball holds at least one generated sample. Strict inequalities, as the `prdc` package has them.
The Frechet distance itself is `condgen.eval.fid.fid_from_features` (torch-fidelity's).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

CMMD_SIGMA = 10.0
CMMD_SCALE = 1000.0


def _as64(x: np.ndarray | Tensor) -> Tensor:
    t = torch.as_tensor(np.asarray(x.cpu() if isinstance(x, Tensor) else x), dtype=torch.float64)
    if t.ndim != 2 or len(t) < 2:
        raise ValueError(f"need an (n >= 2, d) feature array, got shape {tuple(t.shape)}")
    return t


def _pairwise(a: Tensor, b: Tensor) -> Tensor:
    # direct differences, not the |a|^2 - 2ab + |b|^2 shortcut: k-NN counts must not flip on rounding
    return torch.cdist(a, b, compute_mode="donot_use_mm_for_euclid_dist")


def cmmd(x: np.ndarray | Tensor, y: np.ndarray | Tensor, *, sigma: float = CMMD_SIGMA,
         scale: float = CMMD_SCALE) -> float:
    """scale * MMD^2 (biased estimator, Gaussian RBF of bandwidth `sigma`) between embedding sets x and y."""
    x, y = _as64(x), _as64(y)
    if x.shape[1] != y.shape[1]:
        raise ValueError(f"CMMD: embeddings differ in width ({x.shape[1]} vs {y.shape[1]})")
    gamma = 1.0 / (2.0 * sigma**2)

    def mean_k(a: Tensor, b: Tensor) -> Tensor:
        return torch.exp(-gamma * _pairwise(a, b).square()).mean()

    return float(scale * (mean_k(x, x) + mean_k(y, y) - 2.0 * mean_k(x, y)))


def precision_recall(real: np.ndarray | Tensor, fake: np.ndarray | Tensor, *, k: int = 3) -> dict[str, float]:
    """Improved precision and recall with k-NN balls (as torch-fidelity's `calculate_precision_recall_full`).

    Our own few lines rather than torch-fidelity's call: the ratios come out as exact float64 fractions
    (torch-fidelity's are float32 means) and the float64 distances are computed directly.
    """
    real_t, fake_t = (t.double() for t in _check_knn(real, fake, k))
    r_real = _pairwise(real_t, real_t).kthvalue(k + 1, dim=1).values  # neighbour 0 is the point itself
    r_fake = _pairwise(fake_t, fake_t).kthvalue(k + 1, dim=1).values
    d = _pairwise(real_t, fake_t)  # (real, fake)
    precision = (d <= r_real[:, None]).any(dim=0).double().mean().item()
    recall = (d <= r_fake[None, :]).any(dim=1).double().mean().item()
    return {"precision": float(precision), "recall": float(recall)}


def density_coverage(real: np.ndarray | Tensor, fake: np.ndarray | Tensor, *, k: int = 5) -> dict[str, float]:
    """Density and coverage of the generated samples with respect to the real samples' k-NN balls."""
    real_t, fake_t = (t.double() for t in _check_knn(real, fake, k))
    radius = _pairwise(real_t, real_t).kthvalue(k + 1, dim=1).values  # neighbour 0 is the point itself
    inside = _pairwise(real_t, fake_t) < radius[:, None]  # (real, fake): fake j inside real i's ball
    density = inside.sum().item() / (k * fake_t.shape[0])
    coverage = inside.any(dim=1).double().mean().item()
    return {"density": float(density), "coverage": float(coverage)}


def _check_knn(real: np.ndarray | Tensor, fake: np.ndarray | Tensor, k: int) -> tuple[Tensor, Tensor]:
    def tensor(x: np.ndarray | Tensor) -> Tensor:
        return x.detach().cpu() if isinstance(x, Tensor) else torch.from_numpy(np.asarray(x))

    real_t, fake_t = tensor(real), tensor(fake)
    if real_t.ndim != 2 or fake_t.ndim != 2 or real_t.shape[1] != fake_t.shape[1]:
        raise ValueError(f"need (n, d) real and generated features, got {tuple(real_t.shape)} and "
                         f"{tuple(fake_t.shape)}")
    if min(len(real_t), len(fake_t)) <= k:
        raise ValueError(f"k-NN metrics with k={k} need more than {k} samples per set, got "
                         f"{len(real_t)} real and {len(fake_t)} generated; evaluate more images or lower k")
    return real_t, fake_t.to(real_t.dtype)
