"""Centered kernel alignment (Kornblith et al., 2019) between two activation matrices.

Written by hand: it is a few lines of numpy, and none of ctbench's dependencies has it.
Both forms compare (n, features) matrices whose rows are the same n inputs; the feature
counts may differ. CKA = HSIC(K, L) / sqrt(HSIC(K, K) HSIC(L, L)) with the biased HSIC,
tr(HKHL), whose constant factor cancels in the ratio.

BLAS runs on one thread here, as in the linear probe: the matrices (n of a few hundred)
gain little from more, and a one-thread sum has one order on every machine, so the same
activations give the same CKA bits whatever the core count.
"""
from __future__ import annotations

import functools

import numpy as np
from threadpoolctl import threadpool_limits

RBF_FRACTION = 0.5  # bandwidth = this fraction of the median pairwise distance, as the study chose


def center_gram(gram: np.ndarray) -> np.ndarray:
    """H K H with H = I - 11^T/n, without building H."""
    return gram - gram.mean(0, keepdims=True) - gram.mean(1, keepdims=True) + gram.mean()


def linear_gram(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    return x @ x.T


def rbf_gram(x: np.ndarray, fraction: float = RBF_FRACTION) -> np.ndarray:
    """exp(-d^2 / (2 sigma^2)), sigma = ``fraction`` x the median distance over distinct pairs.

    The median skips the zero self-distances, so it is the median of the n(n-1)/2 pairs.
    All rows equal (median 0) has no scale: the Gram matrix is then all ones, which centres
    to zero and makes CKA undefined (NaN), as it should be.
    """
    x = np.asarray(x, dtype=np.float64)
    squared = np.sum(x * x, 1)
    distances2 = np.maximum(squared[:, None] + squared[None, :] - 2 * x @ x.T, 0.0)
    np.fill_diagonal(distances2, 0.0)
    median = float(np.median(np.sqrt(distances2[np.triu_indices(len(x), 1)]))) if len(x) > 1 else 0.0
    if median == 0.0:
        return np.ones_like(distances2)
    return np.exp(-distances2 / (2 * (fraction * median) ** 2))


def cka_from_grams(k: np.ndarray, l: np.ndarray) -> float:
    """NaN when either side has no variance across the inputs: there is nothing to align."""
    k, l = center_gram(k), center_gram(l)
    denominator = np.sqrt(np.sum(k * k) * np.sum(l * l))
    if denominator == 0.0:
        return float("nan")
    return float(np.clip(np.sum(k * l) / denominator, 0.0, 1.0))


def _one_blas_thread(function):
    @functools.wraps(function)
    def limited(*args, **kwargs):
        with threadpool_limits(limits=1, user_api="blas"):
            return function(*args, **kwargs)
    return limited


@_one_blas_thread
def linear_cka(x: np.ndarray, y: np.ndarray) -> float:
    _check_rows(x, y)
    return cka_from_grams(linear_gram(x), linear_gram(y))


@_one_blas_thread
def rbf_cka(x: np.ndarray, y: np.ndarray, fraction: float = RBF_FRACTION) -> float:
    _check_rows(x, y)
    return cka_from_grams(rbf_gram(x, fraction), rbf_gram(y, fraction))


def _check_rows(x: np.ndarray, y: np.ndarray) -> None:
    if len(x) != len(y) or len(x) < 2:
        raise ValueError(f"CKA compares the same n >= 2 inputs, got {len(x)} and {len(y)} rows")
