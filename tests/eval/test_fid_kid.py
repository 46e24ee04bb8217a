"""FID and KID against known values: closed forms for Gaussians, a direct MMD, the real-feature cache."""

import numpy as np
import pytest
import torch
from scipy import linalg

from condgen.eval.fid import (
    cache_path,
    cached_features,
    feature_statistics,
    fid_from_features,
    frechet_distance,
    kid_from_features,
    to_uint8,
)


def closed_form(mu1, s1, mu2, s2):
    """|mu1 - mu2|^2 + tr(S1 + S2 - 2 (S1 S2)^1/2), with scipy's matrix square root."""
    root = linalg.sqrtm(s1 @ s2).real
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1 + s2 - 2 * root))


def random_spd(rng, d):
    a = rng.normal(size=(d, d))
    return a @ a.T / d + 0.1 * np.eye(d)


def test_frechet_distance_of_diagonal_gaussians_is_the_textbook_formula():
    mu1, mu2 = np.array([0.0, 1.0, 2.0]), np.array([1.0, 1.0, 0.0])
    v1, v2 = np.array([1.0, 4.0, 0.25]), np.array([4.0, 1.0, 1.0])
    expected = 1 + 0 + 4 + sum(v1 + v2 - 2 * np.sqrt(v1 * v2))  # = 5 + 1 + 1 + 0.25 = 7.25
    assert frechet_distance(mu1, np.diag(v1), mu2, np.diag(v2)) == pytest.approx(expected, abs=1e-10)
    assert expected == pytest.approx(7.25)


def test_frechet_distance_matches_sqrtm_for_non_commuting_covariances():
    rng = np.random.default_rng(0)
    for d in (2, 5, 16):
        mu1, mu2 = rng.normal(size=d), rng.normal(size=d)
        s1, s2 = random_spd(rng, d), random_spd(rng, d)
        assert not np.allclose(s1 @ s2, s2 @ s1)
        assert frechet_distance(mu1, s1, mu2, s2) == pytest.approx(closed_form(mu1, s1, mu2, s2), rel=1e-8)


def test_fid_of_identical_sets_is_zero_and_of_shifted_gaussians_is_the_shift():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(4000, 8))
    assert abs(fid_from_features(x, x)) < 1e-8
    shift = np.array([3.0, 0, 0, 0, 0, 0, 0, 4.0])  # |shift|^2 = 25; same covariance, so the trace term is 0
    assert fid_from_features(x, x + shift) == pytest.approx(25.0, abs=1e-8)
    y = rng.normal(size=(4000, 8)) * 2.0 + shift  # N(shift, 4 I): closed form 25 + 8 (1 + 4 - 2 * 2) = 33
    assert fid_from_features(x, y) == pytest.approx(33.0, rel=0.03)


def test_statistics_are_float64_unbiased_and_need_two_samples():
    x = torch.tensor([[0.0, 1.0], [2.0, 3.0], [4.0, 8.0]])
    mu, sigma = feature_statistics(x)
    assert mu.dtype == sigma.dtype == np.float64
    np.testing.assert_allclose(sigma, np.cov(x.numpy().T))
    with pytest.raises(ValueError, match="n >= 2"):
        feature_statistics(x[:1])
    with pytest.raises(ValueError, match="differ in shape"):
        frechet_distance(mu, sigma, mu[:1], sigma[:1, :1])


def direct_kid(x, y):
    """Unbiased MMD^2 with k(a, b) = (a.b / d + 1)^3, written out from Binkowski et al. (2018), Eq. 2."""
    d, m, n = x.shape[1], len(x), len(y)
    k = lambda a, b: (a @ b.T / d + 1) ** 3  # noqa: E731
    kxx, kyy, kxy = k(x, x), k(y, y), k(x, y)
    return (
        (kxx.sum() - np.trace(kxx)) / (m * (m - 1))
        + (kyy.sum() - np.trace(kyy)) / (n * (n - 1))
        - 2 * kxy.mean()
    )


def test_kid_with_one_full_subset_is_the_unbiased_mmd():
    rng = np.random.default_rng(2)
    x, y = rng.normal(size=(30, 6)), rng.normal(size=(30, 6)) + 0.5
    out = kid_from_features(x, y, subsets=3, subset_size=1000)
    assert out["kid_subset_size"] == 30  # capped at the number of images, never an assertion error
    assert out["kid_mean"] == pytest.approx(direct_kid(x, y), rel=1e-9)
    assert out["kid_std"] == pytest.approx(0.0, abs=1e-12)  # every subset is all images


def test_kid_separates_same_from_shifted_distributions():
    rng = np.random.default_rng(3)
    a, b = rng.normal(size=(400, 16)), rng.normal(size=(400, 16))
    same = kid_from_features(a, b, subsets=20, subset_size=100)
    shifted = kid_from_features(a, b + 1.0, subsets=20, subset_size=100)
    assert abs(same["kid_mean"]) < 3 * same["kid_std"] + 1e-3
    assert shifted["kid_mean"] > 50 * max(abs(same["kid_mean"]), same["kid_std"])
    again = kid_from_features(a, b + 1.0, subsets=20, subset_size=100)
    assert again == shifted  # the subsets are drawn from the seed
    with pytest.raises(ValueError, match="at least 2"):
        kid_from_features(a[:1], b)


def test_to_uint8_rounds_like_a_png_export():
    img = torch.tensor([-1.0, -0.99, 0.0, 0.999, 1.0, 3.0])
    assert to_uint8(img).tolist() == [0, 1, 128, 255, 255, 255]


def test_real_features_are_cached_per_protocol(tmp_path):
    calls = []

    def compute():
        calls.append(1)
        return np.arange(6.0).reshape(3, 2)

    fields = {
        "dataset": "SyntheticLandscapes",
        "split": "val",
        "resolution": "32x32",
        "extractor": "x",
        "images": 3,
    }
    first, path, hit = cached_features(fields, compute, root=tmp_path)
    again, path2, hit2 = cached_features(fields, compute, root=tmp_path)
    assert (hit, hit2, len(calls), path) == (False, True, 1, path2)
    np.testing.assert_array_equal(first, again)
    assert path == cache_path(fields, tmp_path) and path.with_suffix(".json").is_file()
    other = cache_path({**fields, "resize_filter": "bicubic"}, tmp_path)
    assert other != path  # a different resize filter is a different set of real features
