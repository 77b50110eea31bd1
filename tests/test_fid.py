"""ddpm.fid: the Fréchet distance against closed forms, and its refusals."""
from __future__ import annotations

import math

import numpy as np
import pytest

from ddpm.fid import frechet_distance


def exact_gaussian_samples(means, variances, n=64, seed=0) -> np.ndarray:
    """(n, D) samples whose sample mean is exactly ``means`` and whose (n-1)-normalised sample
    covariance is exactly diag(``variances``): orthonormal zero-mean columns, rescaled."""
    rng = np.random.default_rng(seed)
    d = len(means)
    q, _ = np.linalg.qr(np.column_stack([np.ones(n), rng.normal(size=(n, d))]))
    z = q[:, 1:] * math.sqrt(n - 1)  # orthogonal to the ones column: zero mean, unit variance, uncorrelated
    return np.asarray(means) + z * np.sqrt(variances)


def test_frechet_of_identical_sets_is_zero():
    feats = np.random.default_rng(0).normal(size=(200, 8))
    assert frechet_distance(feats, feats) == pytest.approx(0.0, abs=1e-6)


def test_frechet_is_symmetric():
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=(300, 6)), rng.normal(0.5, 2.0, size=(200, 6))
    assert frechet_distance(a, b) == pytest.approx(frechet_distance(b, a), rel=1e-6)


def test_frechet_matches_1d_closed_form():
    m1, s1, m2, s2 = 0.5, 2.0, -1.0, 0.5  # means and variances
    a, b = exact_gaussian_samples([m1], [s1], seed=2), exact_gaussian_samples([m2], [s2], seed=3)
    expected = (m1 - m2) ** 2 + s1 + s2 - 2 * math.sqrt(s1 * s2)
    assert frechet_distance(a, b) == pytest.approx(expected, rel=1e-6)


def test_frechet_matches_diagonal_closed_form():
    m1, v1 = np.array([0.0, 1.0, -2.0]), np.array([1.0, 4.0, 0.25])
    m2, v2 = np.array([1.0, 1.0, 0.0]), np.array([9.0, 1.0, 0.25])
    a, b = exact_gaussian_samples(m1, v1, seed=4), exact_gaussian_samples(m2, v2, n=80, seed=5)
    expected = ((m1 - m2) ** 2).sum() + (v1 + v2 - 2 * np.sqrt(v1 * v2)).sum()
    assert frechet_distance(a, b) == pytest.approx(expected, rel=1e-6)


def test_frechet_rejects_bad_features():
    with pytest.raises(ValueError, match="same D"):
        frechet_distance(np.zeros((5, 3)), np.zeros((5, 4)))
    with pytest.raises(ValueError, match="NaN"):
        frechet_distance(np.full((5, 3), np.nan), np.zeros((5, 3)))


def test_frechet_is_finite_with_fewer_samples_than_dimensions():
    rng = np.random.default_rng(6)
    d = frechet_distance(rng.normal(size=(8, 32)), rng.normal(size=(8, 32)))
    assert math.isfinite(d) and d >= 0
