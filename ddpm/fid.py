"""The Fréchet distance between two feature sets, as in FID (Heusel et al. 2017), in any feature space.

``evaluate`` measures it in the penultimate features of its small classifier (``ddpm.classifier.features``),
not Inception's: numbers compare between models of one dataset, not with published FIDs.
"""
from __future__ import annotations

import math

import numpy as np


def frechet_distance(feats_a, feats_b, eps: float = 1e-6) -> float:
    """Fréchet distance between Gaussians fitted to (N_a, D) and (N_b, D) feature sets (float >= 0):

        ||mu_a - mu_b||^2 + tr(S_a) + tr(S_b) - 2 tr((S_a S_b)^(1/2))

    with sample means and (N - 1)-normalised covariances. The matrix square root (``scipy.linalg.sqrtm``)
    keeps its real part; when it is not finite (near-singular covariances, N <= D) ``eps`` is added to
    both diagonals and it is retried, as pytorch-fid does. Rounding can give tiny negative totals:
    those become 0.
    """
    from scipy import linalg

    a, b = np.asarray(feats_a, dtype=np.float64), np.asarray(feats_b, dtype=np.float64)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1]:
        raise ValueError(f"need two (N, D) feature sets with the same D, got {a.shape} and {b.shape}")
    if len(a) < 2 or len(b) < 2:
        raise ValueError(f"need at least 2 feature vectors per set, got {len(a)} and {len(b)}")
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        raise ValueError("feature sets hold NaN or infinite values")
    mu_a, mu_b = a.mean(axis=0), b.mean(axis=0)
    cov_a = np.atleast_2d(np.cov(a, rowvar=False))
    cov_b = np.atleast_2d(np.cov(b, rowvar=False))
    covmean = linalg.sqrtm(cov_a @ cov_b)
    if not np.isfinite(covmean).all():
        offset = np.eye(len(cov_a)) * eps
        covmean = linalg.sqrtm((cov_a + offset) @ (cov_b + offset))
    covmean = np.real(covmean)
    distance = float(((mu_a - mu_b) ** 2).sum() + np.trace(cov_a) + np.trace(cov_b) - 2 * np.trace(covmean))
    if not math.isfinite(distance):
        raise ValueError("the Fréchet distance is not finite: the feature covariances are degenerate")
    return max(distance, 0.0)
