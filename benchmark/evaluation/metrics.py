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
    """One-vs-rest AUC averaged over the labels or classes the evaluated rows hold both ways.

    A class (or label) absent from the rows has no AUC; it is left out of the mean, as Dice
    leaves out a class absent from truth and prediction, instead of making the whole score NaN
    (sklearn's multiclass path) and so every point of a validation sweep undefined.
    ``absent_classes`` names what was left out. Equal to sklearn's macro OvR AUC when every class
    is present.
    """
    if y_true.ndim == 2:
        columns = [(y_true[:, j], prob[:, j]) for j in range(y_true.shape[1])]
    elif prob.shape[1] == 2:
        columns = [(y_true == 1, prob[:, 1])]
    else:
        columns = [(y_true == c, prob[:, c]) for c in range(prob.shape[1])]
    scores = [skm.roc_auc_score(truth, p) for truth, p in columns if len(np.unique(truth)) == 2]
    return float(np.mean(scores)) if scores and len(np.unique(y_true)) > 1 else float("nan")


def absent_classes(y_true: np.ndarray, class_names: list[str]) -> list[str]:
    """Classes the rows never hold (multilabel: labels never, or always, positive): those AUC leaves out."""
    if y_true.ndim == 2:
        return [name for j, name in enumerate(class_names) if len(np.unique(y_true[:, j])) < 2]
    present = set(np.unique(y_true).tolist())
    return [name for c, name in enumerate(class_names) if c not in present]


def _f1_macro(y_true: np.ndarray, prob: np.ndarray) -> float:
    """Over the classes in truth or prediction: one absent from both is left out (the Dice rule),
    not scored 0; a class only predicted still scores 0."""
    return float(skm.f1_score(y_true, prob.argmax(1), average="macro", zero_division=0))


METRICS: dict[str, MetricFn] = {
    "accuracy": lambda y, p: float(skm.accuracy_score(y, p.argmax(1))),
    "balanced_accuracy": lambda y, p: float(skm.balanced_accuracy_score(y, p.argmax(1))),
    "f1_macro": _f1_macro,
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
    knows neither volumes nor undefined cases. ``dice_study_<name>`` (see :func:`study_dice`)
    adds the study's batch-pooled Dice beside these; ``dice_<class>`` stays the ranking one.
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
    scores.update(study_dice(y_true, y_pred, class_names, regions))
    return scores


# The study's Dice (TIO-IKIM/Transfer-learning-across-domain-boundaries, utility/eval_metrics.py,
# Segmentation_Metrics and BraTS_Metrics) is pooled within each test batch of its DataLoader
# (batch_size 128, shuffle=True, drop_last=False) and then averaged over batches weighted by
# batch size. Its number therefore depends on which slices share a batch. We fix that with a
# seeded permutation, so ``rescore`` recomputes the same value from saved predictions alone.
STUDY_DICE_SEED = 0
STUDY_BATCH_SIZE = 128
STUDY_EPS = 1e-6  # the study's epsilon, in each batch's Dice and in the weighted mean
STUDY_REGION_ORDER = ("ET", "WT", "TC")  # BraTS_Metrics stacks [background, ET, WT, TC]


def study_targets(class_names: list[str], regions: dict[str, list[int]] | None = None) -> dict[str, list[int]]:
    """The labels each study Dice scores, in the study's order, background (label 0) first.

    With regions (BraTS) the study scores background, ET, WT, TC, not the raw classes; any
    region it does not name follows in the task's order. Without regions, every class, each
    its own label: the study's LiTS liver is liver without tumour (tumour wins overlapping
    masks and the prediction is an argmax), so no union here.
    """
    targets = {class_names[0]: [0]}
    if not regions:
        targets.update({name: [index] for index, name in enumerate(class_names) if index > 0})
        return targets
    ordered = [r for r in STUDY_REGION_ORDER if r in regions] + [r for r in regions if r not in STUDY_REGION_ORDER]
    targets.update({name: list(regions[name]) for name in ordered})
    return targets


def study_dice(y_true: np.ndarray, y_pred: np.ndarray, class_names: list[str],
               regions: dict[str, list[int]] | None = None, batch_size: int = STUDY_BATCH_SIZE,
               seed: int = STUDY_DICE_SEED) -> dict[str, float]:
    """``dice_study_<name>``: the study's batch-pooled Dice, one number per target, no mean.

    The slices (axis 0) are permuted by ``numpy.random.default_rng(seed)`` and cut into
    batches of ``batch_size`` (the last one smaller). Per batch and target, Dice pools all
    pixels: 2|P & T| / (|P| + |T| + 1e-6), and a batch where the target is absent from both
    truth and prediction is skipped. The score is sum(dice_b * n_b) / (sum(n_b) + 1e-6) over the
    batches kept, n_b the batch's slice count; as in the study, a target no batch scores gets
    0.0 (an empty sum), not NaN. Keys follow :func:`study_targets`.

    Reported beside, never ranking: it moves with batch composition (a batch full of slices
    without tumour scores its few false positives as 0). The ranking ``dice_<class>`` is the
    per-volume Dice that the LiTS and BraTS challenges report themselves. The study weighted
    a 1-slice batch by its image height (a squeeze); here a batch weighs its slice count.
    """
    targets = study_targets(class_names, regions)
    order = np.random.default_rng(seed).permutation(len(y_true))
    weighted = dict.fromkeys(targets, 0.0)
    seen = dict.fromkeys(targets, 0)
    for start in range(0, len(order), batch_size):
        batch = order[start:start + batch_size]
        truth_batch, pred_batch = y_true[batch], y_pred[batch]
        for name, members in targets.items():
            truth, pred = np.isin(truth_batch, members), np.isin(pred_batch, members)
            cardinality = int(truth.sum()) + int(pred.sum())
            if cardinality == 0:  # the study's "all-empty" case: no intersection either
                continue
            weighted[name] += 2.0 * int((truth & pred).sum()) / (cardinality + STUDY_EPS) * len(batch)
            seen[name] += len(batch)
    return {f"dice_study_{name}": float(weighted[name] / (seen[name] + STUDY_EPS)) for name in targets}


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
    study = {f"dice_study_{target}" for target in study_targets(class_names, regions)}
    return name in METRICS or name == "dice_mean" or name in dice or name in study
