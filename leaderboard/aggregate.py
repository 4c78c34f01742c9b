"""Stored results -> tidy per-seed rows -> per-cell summaries across seeds.

Summaries only ever group rows of the same task version (a result ranks only against
results of the same task version), and report the seed count, mean, sample std and a
t-distribution 95 % CI, so that a reader can see when a difference is noise.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from benchmark.store import LoadProblem, ResultStore

TIDY_COLUMNS = ["checkpoint", "task", "task_version", "protocol", "scale", "seed", "metric", "value"]
CELL = ["checkpoint", "task", "task_version", "protocol", "scale", "metric"]


def load(store: ResultStore) -> tuple[list[dict], list[LoadProblem]]:
    results, problems = [], []
    for item in store.iter_results():
        (problems if isinstance(item, LoadProblem) else results).append(item)
    return results, problems


def tidy(results: list[dict]) -> pd.DataFrame:
    """One row per job and metric: the long format every later statistic starts from."""
    rows = [
        {
            "checkpoint": r["job"]["checkpoint"], "task": r["job"]["task"], "task_version": r["job"]["task_version"],
            "protocol": r["job"]["protocol"], "scale": float(r["job"]["scale"]), "seed": int(r["job"]["seed"]),
            "metric": metric, "value": value,
        }
        for r in results
        for metric, value in sorted(r["metrics"].items())
    ]
    frame = pd.DataFrame(rows, columns=TIDY_COLUMNS)
    return frame.sort_values(TIDY_COLUMNS[:-1], ascending=[True, True, True, True, False, True, True],
                             kind="mergesort").reset_index(drop=True)


def _ci95(values: pd.Series) -> tuple[float, float]:
    finite = values.dropna().to_numpy(dtype=float)
    if len(finite) < 2:
        return float("nan"), float("nan")
    half = stats.t.ppf(0.975, len(finite) - 1) * finite.std(ddof=1) / np.sqrt(len(finite))
    return float(finite.mean() - half), float(finite.mean() + half)


def summarize(frame: pd.DataFrame) -> pd.DataFrame:
    rows = []
    for key, group in frame.groupby(CELL, sort=True):
        values = group["value"].astype(float)
        low, high = _ci95(values)
        rows.append({**dict(zip(CELL, key)), "n_seeds": int(values.notna().sum()), "mean": values.mean(),
                     "std": values.std(ddof=1) if values.notna().sum() > 1 else float("nan"),
                     "ci95_low": low, "ci95_high": high, "seeds": sorted(group["seed"].tolist())})
    return pd.DataFrame(rows)
