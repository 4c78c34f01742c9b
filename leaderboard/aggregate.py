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
from leaderboard.ingested import STATUSES, load_ingested, status_of, submitter_of
from leaderboard.variants import as_entry

# The ``results export`` header, which ``results import`` reads back.
TIDY_COLUMNS = ["checkpoint", "task", "task_version", "protocol", "scale", "seed", "metric", "value"]
# where a row came from: its status (``ingested.STATUSES``), who submitted it and which bundle held it
# and the split's membership hash (benchmark.data.membership), "" where the result recorded none
PROVENANCE_COLUMNS = ["imported", "source", "status", "submitter", "bundle", "membership"]
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
    ("" for results run here), its ``status`` (``ingested.STATUSES``), ``submitter`` and ``bundle``
    (an ingested bundle's sha256) and the split ``membership`` it ran on (``PROVENANCE_COLUMNS``).
    An imported row whose key a result run here (or an import read earlier, in file-name order)
    already gives is dropped, so importing an export back into the workdir it came from does not
    count any seed twice.
    """
    rows = [
        {
            "checkpoint": r.job.checkpoint, "task": r.job.task, "task_version": r.job.task_version,
            "protocol": r.job.protocol, "scale": float(r.job.scale), "seed": int(r.job.seed),
            "metric": metric, "value": value,
            "imported": r.imported is not None, "source": r.imported.source if r.imported else "",
            "status": status_of(r), "submitter": submitter_of(r), "bundle": bundle_of(r),
            "membership": membership_of(r),
        }
        for r in results
        for metric, value in sorted(r.metrics.items())
    ]
    frame = _drop_shadowed(pd.DataFrame(rows, columns=TIDY_COLUMNS + PROVENANCE_COLUMNS))
    return frame.sort_values(TIDY_COLUMNS[:-1], ascending=[True, True, True, True, False, True, True],
                             kind="mergesort").reset_index(drop=True)


def bundle_of(result: AnyResult) -> str:
    """The sha256 of the submission bundle an ingested result came in ("" for any other)."""
    submission = getattr(result, "submission", None)
    return submission.bundle_sha256 if submission is not None else ""


def membership_of(result: AnyResult) -> str:
    """The split membership a result ran on ("" for an import or a result from before it was recorded)."""
    splits = getattr(result, "splits", None)
    return (splits.split_membership or "") if splits is not None else ""


def split_class(statuses) -> str:
    """A cell's split from its rows' (``site`` classifies each row): any "custom" row makes it custom."""
    present = set(statuses)
    return next((s for s in ("custom", "unpublished", "published") if s in present), "")


def best_status(statuses) -> str:
    """The most trusted of ``statuses`` (``STATUSES`` order): a cell any verified seed backs is verified."""
    present = set(statuses)
    return next((s for s in STATUSES if s in present), "local")


def _drop_shadowed(frame: pd.DataFrame) -> pd.DataFrame:
    """Local results keep their duplicates (as before); imported rows yield to any earlier row."""
    key = TIDY_COLUMNS[:-1]
    imported = frame["imported"].astype(bool)
    local = pd.MultiIndex.from_frame(frame.loc[~imported, key])
    shadowed = imported & (pd.MultiIndex.from_frame(frame[key]).isin(local) | frame.duplicated(key))
    return frame[~shadowed]


def ci95(values) -> tuple[float, float]:
    """The 95 % t-interval of the mean of ``values`` (NaN with fewer than two finite ones)."""
    finite = pd.Series(values, dtype=float).dropna().to_numpy()
    if len(finite) < 2:
        return float("nan"), float("nan")
    half = stats.t.ppf(0.975, len(finite) - 1) * finite.std(ddof=1) / np.sqrt(len(finite))
    return float(finite.mean() - half), float(finite.mean() + half)


def summarize(frame: pd.DataFrame) -> pd.DataFrame:
    """Per cell: seed count, mean, std, 95 % CI, the seeds, and the cell's status (its best row's;
    "local" for a hand-made frame without the column)."""
    rows = []
    for key, group in frame.groupby(CELL, sort=True):
        values = group["value"].astype(float)
        low, high = ci95(values)
        rows.append({**dict(zip(CELL, key)), "n_seeds": int(values.notna().sum()), "mean": values.mean(),
                     "std": values.std(ddof=1) if values.notna().sum() > 1 else float("nan"),
                     "ci95_low": low, "ci95_high": high, "seeds": sorted(group["seed"].tolist()),
                     "status": best_status(group["status"]) if "status" in group else "local",
                     "split": split_class(group["split"]) if "split" in group else ""})
    return pd.DataFrame(rows)
