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


def dice_scores(y_true: np.ndarray, y_pred: np.ndarray, class_names: list[str]) -> dict[str, float]:
    """Dice per foreground class over all given pixels, and their mean.

    Written by hand because scikit-learn's f1 would need the masks flattened into one
    long vector per class; the formula is the same (Dice = F1 of the pixel labels).
    A class absent from both truth and prediction has no defined Dice (NaN), not 1.
    """
    scores = {}
    for index, name in enumerate(class_names[1:], start=1):
        truth, pred = y_true == index, y_pred == index
        denominator = truth.sum() + pred.sum()
        scores[f"dice_{name}"] = float(2 * (truth & pred).sum() / denominator) if denominator else float("nan")
    finite = [v for v in scores.values() if np.isfinite(v)]
    scores["dice_mean"] = float(np.mean(finite)) if finite else float("nan")
    return scores


def known_metric(name: str, class_names: list[str]) -> bool:
    return name in METRICS or name == "dice_mean" or name in {f"dice_{c}" for c in class_names[1:]}
