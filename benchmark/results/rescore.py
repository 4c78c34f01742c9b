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
        differences = _differences(item.metrics, recomputed)
        if not differences:
            report.unchanged += 1
            continue
        report.changed[item.job.job_id] = differences
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


def _differences(stored: dict, recomputed: dict[str, float], tolerance: float = 1e-9) -> dict:
    """Stored nulls are NaNs (JSON has none); a metric new to the code counts as a change."""
    differences = {}
    for name, new in recomputed.items():
        old = stored.get(name, "missing")
        old_value = math.nan if old is None else old
        same = old != "missing" and ((math.isnan(old_value) and math.isnan(new)) or abs(old_value - new) <= tolerance)
        if not same:
            differences[name] = (old, new)
    return differences


def _updated(result: Result, recomputed: dict[str, float]) -> Result:
    payload = result.payload()
    if result.main_metric is not None:
        payload["main_metric"] = {**payload["main_metric"], "value": recomputed[result.main_metric.name]}
    return Result.build({**payload, "metrics": recomputed,
                         "rescored": {"previous_metrics": result.metrics, "ctbench_version": __version__}})
