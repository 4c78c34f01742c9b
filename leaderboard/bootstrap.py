"""The paired bootstrap over test patients: the CI of one checkpoint's metric minus another's,
from the predictions saved beside each result. ``ctbench leaderboard compare`` and the site's
cached intervals (``bootstrap_cache``) both use it; ``stats`` re-exports it.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import pandas as pd

from benchmark.core.atomic import read_npz
from benchmark.core.errors import DataError
from benchmark.core.specs import TaskSpec
from benchmark.evaluation.metrics import score
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
    """
    metric = metric or task.main_metric
    scoring = _scoring_task(task, metric)
    aligned = [_aligned(a, b) for a, b in pairs]
    patients = _shared_patients(aligned)
    draws = np.random.default_rng(seed).integers(0, len(patients), size=(n_resamples, len(patients)))
    per_seed = np.empty((n_resamples, len(aligned)))
    for column, (a, b) in enumerate(aligned):
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
