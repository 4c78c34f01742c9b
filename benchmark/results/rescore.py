"""Recompute every stored result's metrics from its saved per-case predictions.

This is what saving predictions is for: a metric fixed or added later is applied to old
runs without a GPU or the data, and anyone can check that a published number follows from
the predictions behind it.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

from benchmark import __version__
from benchmark.core.atomic import read_npz
from benchmark.evaluation.metrics import score
from benchmark.results.schema import Result
from benchmark.results.store import LoadProblem, ResultStore

PREDICTION_KEYS = ("probabilities", "masks")


@dataclass
class RescoreReport:
    unchanged: int = 0
    changed: dict[str, dict] = field(default_factory=dict)  # job id -> {metric: (stored, recomputed)}
    problems: list[LoadProblem] = field(default_factory=list)


def rescore(store: ResultStore, write: bool) -> RescoreReport:
    report = RescoreReport()
    for path, item in store.iter_files():
        if isinstance(item, LoadProblem):
            report.problems.append(item)
            continue
        try:
            recomputed = recompute(path, item)
        except (OSError, ValueError, KeyError) as exc:
            report.problems.append(LoadProblem(path, f"cannot rescore: {exc}"))
            continue
        changed = differences(item.metrics, recomputed)
        if not changed:
            report.unchanged += 1
            continue
        report.changed[item.job.job_id] = changed
        if write:
            store.rewrite(path, _updated(item, recomputed))
    return report


def recompute(path: Path, result: Result) -> dict[str, float]:
    task = result.task.spec()
    if result.predictions_file is None:
        raise KeyError("predictions_file")
    predictions = read_npz(path.parent / result.predictions_file)
    return score(task, predictions["y_true"], predictions["patient_ids"],
                 {k: predictions[k] for k in PREDICTION_KEYS if k in predictions})


def differences(stored: dict, recomputed: dict[str, float], tolerance: float = 1e-9) -> dict:
    """{name: (stored, recomputed)} where they differ; "missing" where the stored result lacks a
    metric (a metric new to the code counts as a change)."""
    return {name: (stored.get(name, "missing"), new) for name, new in recomputed.items()
            if name not in stored or not same_metric(stored[name], new, tolerance)}


def same_metric(stored, new: float, tolerance: float = 1e-9) -> bool:
    """Within ``tolerance``; a stored null is an undefined metric (JSON has no NaN), equal to a NaN."""
    old = math.nan if stored is None else float(stored)
    return (math.isnan(old) and math.isnan(new)) or abs(old - new) <= tolerance


def _updated(result: Result, recomputed: dict[str, float]) -> Result:
    payload = result.payload()
    if result.main_metric is not None:
        payload["main_metric"] = {**payload["main_metric"], "value": recomputed[result.main_metric.name]}
    return Result.build({**payload, "metrics": recomputed,
                         "rescored": {"previous_metrics": result.metrics, "ctbench_version": __version__}})
