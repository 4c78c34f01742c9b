"""Metrics by name, all from scikit-learn, computed from saved per-case probabilities.

Working from probabilities (not from a model) is what lets ``rescore`` recompute any
metric later without a GPU.
"""
from __future__ import annotations

from typing import Callable

import numpy as np
from sklearn import metrics as skm

MetricFn = Callable[[np.ndarray, np.ndarray], float]


def _auc(y_true: np.ndarray, prob: np.ndarray) -> float:
    if prob.ndim == 2 and y_true.ndim == 2:  # multilabel: mean over labels that have both classes
        usable = [j for j in range(y_true.shape[1]) if len(np.unique(y_true[:, j])) == 2]
        return float(np.mean([skm.roc_auc_score(y_true[:, j], prob[:, j]) for j in usable])) if usable else float("nan")
    present = np.unique(y_true)
    if len(present) < 2:
        return float("nan")
    if prob.shape[1] == 2:
        return float(skm.roc_auc_score(y_true, prob[:, 1]))
    return float(skm.roc_auc_score(y_true, prob, multi_class="ovr", average="macro", labels=np.arange(prob.shape[1])))


METRICS: dict[str, MetricFn] = {
    "accuracy": lambda y, p: float(skm.accuracy_score(y, p.argmax(1))),
    "balanced_accuracy": lambda y, p: float(skm.balanced_accuracy_score(y, p.argmax(1))),
    "f1_macro": lambda y, p: float(skm.f1_score(y, p.argmax(1), average="macro", labels=np.arange(p.shape[1]),
                                                zero_division=0)),
    "auc": _auc,
}


def compute(names: list[str], y_true: np.ndarray, prob: np.ndarray) -> dict[str, float]:
    unknown = [n for n in names if n not in METRICS]
    if unknown:
        raise KeyError(f"unknown metrics {unknown}; known: {sorted(METRICS)}")
    return {name: METRICS[name](y_true, prob) for name in names}
