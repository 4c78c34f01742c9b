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


def segmentation_scores(y_true: np.ndarray, y_pred: np.ndarray, patient_ids: np.ndarray,
                        class_names: list[str], regions: dict[str, list[int]] | None = None) -> dict[str, float]:
    """Dice per class (and per region, a union of classes) three ways, as LiTS reports them.

    ``dice_<class>``: per patient volume (its slices pooled), averaged over volumes (LiTS's
    "Dice per case"); ``dice_global_<class>``: all pixels pooled; ``dice_slice_<class>``:
    per slice, averaged. Volumes or slices where a class is absent from both truth and
    prediction are left out of that class's average (a NaN, never a free 1.0). ``dice_mean``
    averages the per-volume scores of the regions if the task has any (BraTS's WT/TC/ET),
    else of the foreground classes. Written by hand: scikit-learn's f1 is the same formula but
    knows neither volumes nor undefined cases.
    """
    targets = {name: [index] for index, name in enumerate(class_names) if index > 0}
    targets.update(regions or {})
    patients = np.unique(patient_ids)
    scores: dict[str, float] = {}
    for name, members in targets.items():
        truth, pred = np.isin(y_true, members), np.isin(y_pred, members)
        scores[f"dice_{name}"] = _nanmean([_dice(truth[patient_ids == p], pred[patient_ids == p]) for p in patients])
        scores[f"dice_global_{name}"] = _dice(truth, pred)
        scores[f"dice_slice_{name}"] = _nanmean([_dice(t, q) for t, q in zip(truth, pred)])
    averaged = list(regions) if regions else class_names[1:]
    scores["dice_mean"] = _nanmean([scores[f"dice_{name}"] for name in averaged])
    return scores


def score(task, y_true: np.ndarray, patient_ids: np.ndarray, predictions: dict[str, np.ndarray]) -> dict[str, float]:
    """A task's metrics from saved predictions: what protocols report and ``rescore`` recomputes."""
    if task.kind == "segmentation":
        return segmentation_scores(y_true, predictions["masks"], patient_ids, task.class_names, task.regions)
    return compute(task.metrics, y_true, predictions["probabilities"])


def _dice(truth: np.ndarray, pred: np.ndarray) -> float:
    denominator = truth.sum() + pred.sum()
    return float(2 * (truth & pred).sum() / denominator) if denominator else float("nan")


def _nanmean(values: list[float]) -> float:
    finite = [v for v in values if np.isfinite(v)]
    return float(np.mean(finite)) if finite else float("nan")


def known_metric(name: str, class_names: list[str], regions: dict | None = None) -> bool:
    dice = {f"dice_{variant}{c}" for variant in ("", "global_", "slice_") for c in [*class_names[1:], *(regions or {})]}
    return name in METRICS or name == "dice_mean" or name in dice
