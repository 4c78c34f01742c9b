"""The paired bootstrap over test patients: the CI of one checkpoint's metric minus another's,
from the predictions saved beside each result. ``ctbench leaderboard compare`` and the site's
cached intervals (``bootstrap_cache``) both use it; ``stats`` re-exports it.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Optional, Sequence

import numpy as np
import pandas as pd

from benchmark.core.atomic import read_npz
from benchmark.core.errors import DataError
from benchmark.core.specs import TaskSpec
from benchmark.evaluation.metrics import score, study_targets
from benchmark.results.schema import Result
from benchmark.results.store import LoadProblem, ResultStore

PREDICTION_KEYS = ("probabilities", "masks")


# ---------------------------------------------------------------- paired bootstrap over test patients


@dataclass(frozen=True)
class BootstrapResult:
    metric: str
    difference: float   # metric(a) - metric(b) on the whole test set, averaged over seeds
    ci_low: float
    ci_high: float
    confidence: float
    n_resamples: int
    n_valid: int        # resamples where the metric was defined for both checkpoints in every seed
    n_patients: int
    seeds: tuple[int, ...] = ()

    def as_dict(self) -> dict:
        return asdict(self)


def paired_bootstrap(task: TaskSpec, pairs: Sequence[tuple[dict, dict]], metric: Optional[str] = None,
                     n_resamples: int = 1000, seed: int = 0, confidence: float = 0.95) -> BootstrapResult:
    """CI of metric(a) - metric(b) from two checkpoints' saved predictions, resampling test patients.

    ``pairs`` holds, per training seed, the two prediction dicts (``case_ids``, ``patient_ids``,
    ``y_true`` and ``probabilities`` or ``masks``, as saved beside each result). Each resample
    draws the test patients with replacement (a patient drawn twice counts as two patients,
    so per-patient Dice stays per patient) and recomputes the metric with
    ``benchmark.evaluation.metrics.score`` for both checkpoints on the same rows.

    Pooling over seeds: the test set is the same for every seed (the split does not depend
    on it), so one patient draw is applied to every seed and the per-seed differences are
    averaged; the CI is thus over patients, for the seed-averaged difference the tables show.
    Resamples where the metric is undefined (e.g. AUC with one class drawn) are dropped
    and counted; the CI is the percentile interval of the rest. Written with numpy, not
    scipy.stats.bootstrap, which resamples observations, not groups, and cannot drop those.

    Accuracy, AUC and the per-volume Dice (``dice_<class or region>``, ``dice_mean``) take an
    exact vectorised path (:func:`_fast_metric`): the same numbers, without rescoring each resample.
    """
    return _paired_bootstrap(task, pairs, metric, n_resamples, seed, confidence)


def _paired_bootstrap(task: TaskSpec, pairs: Sequence[tuple[dict, dict]], metric: Optional[str], n_resamples: int,
                      seed: int, confidence: float, fast: bool = True) -> BootstrapResult:
    """``paired_bootstrap``; ``fast=False`` rescores every resample with ``score`` (the reference)."""
    metric = metric or task.main_metric
    scoring = _scoring_task(task, metric)
    aligned = [_aligned(a, b) for a, b in pairs]
    patients = _shared_patients(aligned)
    draws = np.random.default_rng(seed).integers(0, len(patients), size=(n_resamples, len(patients)))
    per_seed = np.empty((n_resamples, len(aligned)))
    for column, (a, b) in enumerate(aligned):
        quick = [_fast_metric(task, metric, p, len(patients)) for p in (a, b)] if fast else [None]
        if all(q is not None for q in quick):
            per_seed[:, column] = _resampled_difference(*quick, draws, len(patients), len(a["y_true"]))
            continue
        groups = [np.flatnonzero(a["patient_ids"] == p) for p in patients]
        for row, draw in enumerate(draws):
            rows = np.concatenate([groups[i] for i in draw])
            labels = np.repeat(np.arange(len(draw)), [len(groups[i]) for i in draw])
            per_seed[row, column] = (_metric(scoring, metric, a, rows, labels)
                                     - _metric(scoring, metric, b, rows, labels))
    pooled = per_seed.mean(axis=1)
    valid = pooled[np.isfinite(pooled)]
    tail = (1 - confidence) / 2
    low, high = np.quantile(valid, [tail, 1 - tail]) if len(valid) else (math.nan, math.nan)
    observed = np.mean([_metric(scoring, metric, a) - _metric(scoring, metric, b) for a, b in aligned])
    return BootstrapResult(metric, float(observed), float(low), float(high), confidence, n_resamples, len(valid),
                           len(patients))


def bootstrap_checkpoints(store: ResultStore, checkpoint_a: str, checkpoint_b: str, task: str, task_version: str,
                          protocol: str, scale: float, **options) -> BootstrapResult:
    """``paired_bootstrap`` over the seeds both checkpoints have stored for one task/protocol/scale.

    Only results run here qualify: imported rows have no predictions. ``options`` go to
    ``paired_bootstrap`` (metric, n_resamples, seed, confidence).
    """
    found: dict[tuple[str, int], tuple[Path, Result]] = {}
    for path, item in store.iter_files():
        if isinstance(item, LoadProblem):
            continue
        job = item.job
        if (job.checkpoint in (checkpoint_a, checkpoint_b) and job.task == task and job.task_version == task_version
                and job.protocol == protocol and float(job.scale) == float(scale)):
            if (job.checkpoint, int(job.seed)) in found:
                raise DataError(f"a second result of {job.checkpoint} seed {job.seed} for the same cell "
                                f"(another profile?)", path)
            found[(job.checkpoint, int(job.seed))] = (path, item)
    seeds = sorted(s for c, s in found if c == checkpoint_a and (checkpoint_b, s) in found)
    if not seeds:
        raise DataError(f"no seed has results of both {checkpoint_a} and {checkpoint_b} on {task}@{task_version} "
                        f"{protocol} scale {scale:g}", store.root)
    spec = found[(checkpoint_a, seeds[0])][1].task.spec()
    pairs = [(read_predictions(*found[(checkpoint_a, s)]), read_predictions(*found[(checkpoint_b, s)])) for s in seeds]
    result = paired_bootstrap(spec, pairs, **options)
    return BootstrapResult(**{**result.as_dict(), "seeds": tuple(seeds)})


def read_predictions(path: Path, result: Result) -> dict:
    """The predictions saved beside the result file at ``path``."""
    if result.predictions_file is None:
        raise KeyError("predictions_file")
    return read_npz(path.parent / result.predictions_file)


def _scoring_task(task: TaskSpec, metric: str) -> TaskSpec:
    """Classification scores only the metric asked for (a resample costs one metric, not all)."""
    if task.kind == "segmentation":
        return task
    if metric not in task.metrics:
        raise ValueError(f"task {task.name} has no metric {metric!r} (it has {', '.join(task.metrics)})")
    return task.model_copy(update={"metrics": [metric], "main_metric": metric})


def _aligned(a: dict, b: dict) -> tuple[dict, dict]:
    """b's rows in a's case order; both must hold the same test cases with the same truth."""
    order = pd.Index(b["case_ids"]).get_indexer(a["case_ids"])
    if len(a["case_ids"]) != len(b["case_ids"]) or (order < 0).any():
        raise ValueError("the two checkpoints' predictions are not of the same test cases")
    b = {key: value[order] for key, value in b.items()}
    if not np.array_equal(a["y_true"], b["y_true"]) or not np.array_equal(a["patient_ids"], b["patient_ids"]):
        raise ValueError("the two checkpoints' predictions disagree on the truth or patients of a case")
    return a, b


def _shared_patients(aligned: list[tuple[dict, dict]]) -> np.ndarray:
    patients = np.unique(aligned[0][0]["patient_ids"])
    if any(not np.array_equal(np.unique(a["patient_ids"]), patients) for a, _ in aligned):
        raise ValueError("the seeds' predictions are not of the same test patients")
    return patients


def _metric(task: TaskSpec, metric: str, predictions: dict, rows: Optional[np.ndarray] = None,
            patient_ids: Optional[np.ndarray] = None) -> float:
    """The metric on ``rows`` (all if None), with ``patient_ids`` standing in for the saved ones."""
    rows = np.arange(len(predictions["y_true"])) if rows is None else rows
    patient_ids = predictions["patient_ids"][rows] if patient_ids is None else patient_ids
    key = next(k for k in PREDICTION_KEYS if k in predictions)
    scores = score(task, predictions["y_true"][rows], patient_ids, {key: predictions[key][rows]})
    if metric not in scores:
        raise ValueError(f"task {task.name} has no metric {metric!r}")
    return scores[metric]


# ---------------------------------------------------------------- the exact vectorised path
#
# A resample is a vector of patient multiplicities w (how often each test patient was drawn). The
# general path above gives every copy of a patient its own id, so accuracy, AUC and the per-volume
# Dice are functions of per-row weights w[patient of the row]: computed for a block of resamples at
# once from sums made once per checkpoint and seed. Every other metric (balanced accuracy, F1, the
# global, slice and study Dice) is rescored per resample.

CHUNK_CELLS = 1 << 23  # resamples x rows held at once (float64: 64 MiB a matrix)

FastMetric = Callable[[np.ndarray], np.ndarray]  # (resamples x patients) multiplicities -> (resamples,) values


def _resampled_difference(quick_a: FastMetric, quick_b: FastMetric, draws: np.ndarray, n_patients: int,
                          n_rows: int) -> np.ndarray:
    """metric(a) - metric(b) of every resample in ``draws``, a block of resamples at a time."""
    out = np.empty(len(draws))
    step = max(1, CHUNK_CELLS // max(n_rows, n_patients, 1))
    for start in range(0, len(draws), step):
        weights = _multiplicities(draws[start:start + step], n_patients)
        out[start:start + len(weights)] = quick_a(weights) - quick_b(weights)
    return out


def _multiplicities(draws: np.ndarray, n_patients: int) -> np.ndarray:
    """(resamples x patients): how often each patient is in each resample's draw."""
    flat = (draws + n_patients * np.arange(len(draws))[:, None]).ravel()
    return np.bincount(flat, minlength=len(draws) * n_patients).reshape(len(draws), n_patients).astype(np.float64)


def _fast_metric(task: TaskSpec, metric: str, predictions: dict, n_patients: int) -> Optional[FastMetric]:
    """``metric`` of ``predictions`` as a function of resample multiplicities, exactly what rescoring the
    resample with ``score`` gives (to rounding); None where only rescoring gives it."""
    key = next((k for k in PREDICTION_KEYS if k in predictions), None)
    y_true = np.asarray(predictions["y_true"])
    _, row_patient = np.unique(predictions["patient_ids"], return_inverse=True)
    row_patient = row_patient.ravel()
    if task.kind == "segmentation":
        masks = np.asarray(predictions["masks"]) if key == "masks" else None
        if masks is None or masks.shape != y_true.shape or y_true.ndim < 1:
            return None
        return _fast_volume_dice(task, metric, y_true, masks, row_patient, n_patients)
    if key != "probabilities":
        return None
    prob = np.asarray(predictions["probabilities"])
    if prob.ndim != 2 or len(prob) != len(y_true) or not np.isfinite(prob).all():
        return None
    if metric == "accuracy":
        return _fast_accuracy(y_true, prob, row_patient, n_patients)
    if metric == "auc":
        return _fast_auc(y_true, prob, row_patient)
    return None


def _fast_accuracy(y_true: np.ndarray, prob: np.ndarray, row_patient: np.ndarray,
                   n_patients: int) -> Optional[FastMetric]:
    """Σ w·correct / Σ w, from each patient's count of rows and of correct rows."""
    if y_true.ndim != 1 or not (np.issubdtype(y_true.dtype, np.integer) or y_true.dtype == bool):
        return None
    correct = np.bincount(row_patient, weights=(prob.argmax(1) == y_true).astype(np.float64), minlength=n_patients)
    count = np.bincount(row_patient, minlength=n_patients).astype(np.float64)
    return lambda weights: (weights @ correct) / (weights @ count)


def _fast_auc(y_true: np.ndarray, prob: np.ndarray, row_patient: np.ndarray) -> Optional[FastMetric]:
    """``metrics._auc``: the mean over the one-vs-rest columns whose truth the resample holds both ways
    of the weighted Mann-Whitney AUC (ties count half), which is sklearn's with integer multiplicities."""
    if y_true.ndim == 2:
        if y_true.shape[1] > prob.shape[1] or not np.isin(y_true, (0, 1)).all():
            return None  # labels other than 0/1: leave sklearn's checks to the general path
        columns = [(y_true[:, j] == 1, prob[:, j]) for j in range(y_true.shape[1])]
    elif y_true.ndim != 1:
        return None
    elif prob.shape[1] == 2:
        columns = [(y_true == 1, prob[:, 1])]
    else:
        columns = [(y_true == c, prob[:, c]) for c in range(prob.shape[1])]
    ranked = [_ranked(truth, scores, row_patient) for truth, scores in columns]

    def values(weights: np.ndarray) -> np.ndarray:
        total, present = np.zeros(len(weights)), np.zeros(len(weights))
        for column in ranked:
            auc = _weighted_auc(weights, *column)
            defined = np.isfinite(auc)
            total += np.where(defined, auc, 0.0)
            present += defined
        return _mean_or_nan(total, present)

    return values


def _ranked(truth: np.ndarray, scores: np.ndarray, row_patient: np.ndarray):
    """One column's rows for :func:`_weighted_auc`: the negative rows' patients by ascending score, and
    for each positive row its patient and how many negative rows score below it and at most as much."""
    negative, positive = np.flatnonzero(~truth), np.flatnonzero(truth)
    negative = negative[np.argsort(scores[negative], kind="stable")]
    ranked = scores[negative]
    below = np.searchsorted(ranked, scores[positive], side="left")
    up_to = np.searchsorted(ranked, scores[positive], side="right")
    return row_patient[negative], row_patient[positive], below, up_to


def _weighted_auc(weights: np.ndarray, negative: np.ndarray, positive: np.ndarray, below: np.ndarray,
                  up_to: np.ndarray) -> np.ndarray:
    """Σ over positive rows of w·(negative weight below + half the negative weight tied) / (W⁺·W⁻) per
    resample, NaN where one side has no weight. All sums are of integers (multiplicities): exact in float64."""
    cumulative = np.zeros((len(weights), len(negative) + 1))
    np.cumsum(weights[:, negative], axis=1, out=cumulative[:, 1:])
    positive_weights = weights[:, positive]
    wins = 0.5 * np.einsum("rk,rk->r", positive_weights, cumulative[:, below] + cumulative[:, up_to])
    n_pos, n_neg = positive_weights.sum(axis=1), cumulative[:, -1]
    defined = (n_pos > 0) & (n_neg > 0)
    return np.where(defined, wins / np.where(defined, n_pos * n_neg, 1.0), np.nan)


def _fast_volume_dice(task: TaskSpec, metric: str, y_true: np.ndarray, masks: np.ndarray, row_patient: np.ndarray,
                      n_patients: int) -> Optional[FastMetric]:
    """``dice_<target>`` (per-volume Dice, its NaN volumes left out) and ``dice_mean`` of
    ``metrics.segmentation_scores``: each patient's Dice once, then multiplicity-weighted means."""
    targets = {name: [index] for index, name in enumerate(task.class_names) if index > 0}
    targets.update(task.regions or {})
    keys = ([f"dice_{variant}{name}" for variant in ("", "global_", "slice_") for name in targets] + ["dice_mean"]
            + [f"dice_study_{name}" for name in study_targets(task.class_names, task.regions)])
    if len(set(keys)) != len(keys):
        return None  # names that make two scores one key: which one wins is segmentation_scores' business
    if metric == "dice_mean":
        names = list(task.regions) if task.regions else list(task.class_names[1:])
    elif metric.startswith("dice_") and metric[len("dice_"):] in targets:
        names = [metric[len("dice_"):]]
    else:
        return None
    if not names:
        return None
    per_patient = {name: _patient_dice(y_true, masks, targets[name], row_patient, n_patients) for name in set(names)}

    def values(weights: np.ndarray) -> np.ndarray:
        scores = np.stack([_weighted_nanmean(weights, per_patient[name]) for name in names], axis=1)
        if metric != "dice_mean":
            return scores[:, 0]
        defined = np.isfinite(scores)
        return _mean_or_nan(np.where(defined, scores, 0.0).sum(axis=1), defined.sum(axis=1))

    return values


def _patient_dice(y_true: np.ndarray, masks: np.ndarray, members: list[int], row_patient: np.ndarray,
                  n_patients: int) -> np.ndarray:
    """Each patient's Dice of one target over its slices pooled; NaN where truth and prediction lack it."""
    truth = np.isin(y_true, members).reshape(len(y_true), -1)
    pred = np.isin(masks, members).reshape(len(masks), -1)

    def per_patient(counts):
        return np.bincount(row_patient, weights=counts.sum(axis=1).astype(np.float64), minlength=n_patients)
    both, denominator = per_patient(truth & pred), per_patient(truth) + per_patient(pred)
    return np.where(denominator > 0, 2 * both / np.where(denominator > 0, denominator, 1.0), np.nan)


def _weighted_nanmean(weights: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Per resample: the mean of ``values`` over the patients drawn, each as often as drawn, NaNs left out."""
    defined = np.isfinite(values)
    return _mean_or_nan(weights @ np.where(defined, values, 0.0), weights @ defined.astype(np.float64))


def _mean_or_nan(total: np.ndarray, count: np.ndarray) -> np.ndarray:
    return np.where(count > 0, total / np.where(count > 0, count, 1), np.nan)
