"""Stored results -> tidy per-seed rows -> per-cell summaries across seeds.

Summaries only ever group rows of the same task version (a result ranks only against
results of the same task version), and report the seed count, mean, sample std and a
t-distribution 95 % CI, so that a reader can see when a difference is noise.

Rows brought in with ``ctbench results import`` (see ``importer.py``; read back by
``imported.py``) join the same table, marked ``imported`` with their ``source``, when ``load``
is given the imported folder.
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import numpy as np
import pandas as pd
from scipy import stats

from benchmark.results.store import LoadProblem, ResultStore
from leaderboard.imported import AnyResult, load_imported
from leaderboard.ingested import load_ingested
from leaderboard.variants import as_entry

# The ``results export`` header, which ``results import`` reads back.
TIDY_COLUMNS = ["checkpoint", "task", "task_version", "protocol", "scale", "seed", "metric", "value"]
PROVENANCE_COLUMNS = ["imported", "source"]
CELL = ["checkpoint", "task", "task_version", "protocol", "scale", "metric"]


def load(store: ResultStore, imported_dir: Optional[Path] = None,
         ingested_dir: Optional[Path] = None) -> tuple[list[AnyResult], list[LoadProblem]]:
    """Stored results, then (if ``ingested_dir`` is given) ingested submissions' results, then (if
    ``imported_dir`` is given) imported rows as ``ImportedResult`` records.

    Imported records have ``imported`` set and no counts, predictions or provenance, which is
    why they are opt-in: callers that read those fields must first learn to skip them.
    """
    results: list[AnyResult] = []
    problems: list[LoadProblem] = []
    for item in store.iter_results():
        if isinstance(item, LoadProblem):
            problems.append(item)
        else:
            results.append(as_entry(item))
    if ingested_dir is not None:
        more, bad = load_ingested(ingested_dir)
        results, problems = results + [as_entry(r) for r in more], problems + bad
    if imported_dir is not None:
        more, bad = load_imported(imported_dir)
        results, problems = results + more, problems + bad
    return results, problems


def tidy(results: list[AnyResult]) -> pd.DataFrame:
    """One row per job and metric: the long format every later statistic starts from.

    Besides ``TIDY_COLUMNS`` each row says whether it was ``imported`` and from which ``source``
    ("" for results run here). An imported row whose key a result run here (or an import read
    earlier, in file-name order) already gives is dropped, so importing an export back into the
    workdir it came from does not count any seed twice.
    """
    rows = [
        {
            "checkpoint": r.job.checkpoint, "task": r.job.task, "task_version": r.job.task_version,
            "protocol": r.job.protocol, "scale": float(r.job.scale), "seed": int(r.job.seed),
            "metric": metric, "value": value,
            "imported": r.imported is not None, "source": r.imported.source if r.imported else "",
        }
        for r in results
        for metric, value in sorted(r.metrics.items())
    ]
    frame = _drop_shadowed(pd.DataFrame(rows, columns=TIDY_COLUMNS + PROVENANCE_COLUMNS))
    return frame.sort_values(TIDY_COLUMNS[:-1], ascending=[True, True, True, True, False, True, True],
                             kind="mergesort").reset_index(drop=True)


def _drop_shadowed(frame: pd.DataFrame) -> pd.DataFrame:
    """Local results keep their duplicates (as before); imported rows yield to any earlier row."""
    key = TIDY_COLUMNS[:-1]
    imported = frame["imported"].astype(bool)
    local = pd.MultiIndex.from_frame(frame.loc[~imported, key])
    shadowed = imported & (pd.MultiIndex.from_frame(frame[key]).isin(local) | frame.duplicated(key))
    return frame[~shadowed]


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
