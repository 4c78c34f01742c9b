"""Comparisons a reader can trust: against named baselines, with the seed noise in view.

Every cell (checkpoint x task x task version x protocol x scale x metric) is compared with
the run's natural-image baseline and its random-init baseline, on the same task version
only: the relative difference the study reports (``mean_a / mean_b - 1``, in percent) and
Welch's t-test over seeds. Tiers ("better" / "tie" / "worse" than a baseline) replace
strict ranks, and the overall score is a Borda count over tasks, because averaging raw
metric values across tasks would weigh each task by its metric's spread. A paired
bootstrap over test patients gives the CI of a difference from the saved predictions.
"""
from __future__ import annotations

import json
import math
import warnings
from typing import NamedTuple, Optional, Sequence, TextIO

import numpy as np
import pandas as pd
from scipy import stats

from benchmark.results.schema import CheckpointRecord
from leaderboard.aggregate import CELL, best_status, split_class, summarize, tidy
from leaderboard.bootstrap import (  # noqa: F401  (re-exported: the CLI and callers import them from stats)
    BootstrapResult,
    bootstrap_checkpoints,
    paired_bootstrap,
    read_predictions,
)
from leaderboard.csv_safety import neutralise_columns
from leaderboard.imported import AnyResult

ALPHA = 0.05
BASELINE_FALLBACK_DOMAIN = {"natural": "natural", "random": "none"}  # role -> pretraining domain, if none plays it
EXPORT_COLUMNS = ["checkpoint", "task", "protocol", "scale", "metric", "n", "mean", "std", "ci_low", "ci_high",
                  "baseline", "delta_pct", "p_welch"]
COMPARE_COLUMNS = ["checkpoint", "task", "task_version", "protocol", "scale", "metric", "n", "mean", "std",
                   "ci_low", "ci_high", "baseline", "baseline_kind", "baseline_n", "baseline_mean", "delta_pct",
                   "p_welch", "tier", "imported", "source", "status", "submitter", "bundle_sha256", "split"]


# ---------------------------------------------------------------- who is compared with whom


def checkpoint_entries(results: list[AnyResult]) -> list[CheckpointRecord]:
    """One spec per checkpoint name, sorted: a result run here wins over an imported row."""
    ordered = sorted(results, key=lambda r: (r.imported is None, r.job.job_id))
    by_name = {r.checkpoint.name: r.checkpoint for r in ordered}
    return [by_name[name] for name in sorted(by_name)]


def main_metrics(results: list[AnyResult]) -> dict[tuple[str, str], dict]:
    """(task, task version) -> {"name", "higher_is_better"}; tasks without a main metric are absent."""
    ordered = sorted(results, key=lambda r: r.imported is None)  # results run here are applied last: they win
    return {(r.job.task, r.job.task_version): {"name": r.main_metric.name, "higher_is_better": r.main_metric.higher_is_better}
            for r in ordered if r.main_metric is not None}


def directions(results: list[AnyResult]) -> dict[tuple[str, str], dict]:
    """``main_metrics`` plus, for a task without a main metric, ``{"name": None, "higher_is_better"}``
    from its task record (an import's ``higher_is_better`` column), so its metrics compare the right way."""
    out = {}
    for r in results:
        higher = r.task.get("higher_is_better")
        if r.main_metric is None and isinstance(higher, bool):
            out.setdefault((r.job.task, r.job.task_version), {"name": None, "higher_is_better": higher})
    return {**out, **main_metrics(results)}


def headline_metrics(results: list[AnyResult]) -> dict[tuple[str, str], list[str]]:
    """(task, task version) -> the metrics the overview shows: the main metric, and those an import
    marked as headline (a task without a main metric shows only these; with neither, none)."""
    out: dict[tuple[str, str], set[str]] = {}
    for r in results:
        mine = out.setdefault((r.job.task, r.job.task_version), set())
        mine.update(m for m in (r.task.get("headline_metrics") or []) if isinstance(m, str))
        if r.main_metric is not None:
            mine.add(r.main_metric.name)
    return {key: sorted(metrics) for key, metrics in sorted(out.items()) if metrics}


def baselines(entries: Sequence[CheckpointRecord]) -> dict[str, Optional[str]]:
    """{"natural": name or None, "random": name or None} for this run's checkpoints.

    The checkpoints whose spec plays that ``baseline_role`` first, the shortest name among
    several (a variant's name extends the reference's: ``random`` before ``random-resnet50``,
    ``imagenet`` before ``demo-natural-simclr``), then the alphabetically first checkpoint
    pretrained on that role's domain ("natural" / "none"), so the choice never depends on file order.
    """
    chosen = {}
    for role, domain in BASELINE_FALLBACK_DOMAIN.items():
        playing = sorted((len(e.name), e.name) for e in entries if e.baseline_role == role)
        of_domain = sorted(e.name for e in entries if e.pretraining_domain == domain)
        chosen[role] = playing[0][1] if playing else (of_domain or [None])[0]
    return chosen


# ---------------------------------------------------------------- one cell against a baseline


def relative_delta_pct(mean_a: float, mean_b: float) -> float:
    """``(mean_a / mean_b - 1) * 100`` as the study computes it; NaN when mean_b is 0 or NaN.

    The sign is that of the raw difference whatever the metric's direction: read it with
    ``higher_is_better`` (``significance_tier`` does).
    """
    if not np.isfinite(mean_a) or not np.isfinite(mean_b) or mean_b == 0:
        return math.nan
    return (mean_a / mean_b - 1) * 100


def welch_p(a: Sequence[float], b: Sequence[float]) -> float:
    """Welch's t-test p over seeds; NaN (never a made-up p) where the test is undefined.

    Undefined means: fewer than two finite values in a group, or no spread in either group.
    For two constant groups scipy returns NaN when they are equal but p = 0 when they differ
    (t = inf from a zero variance estimate); both are NaN here, since seeds that agree exactly
    (a deterministic protocol) say nothing about seed noise. The patient bootstrap still can.
    """
    a, b = _finite(a), _finite(b)
    if len(a) < 2 or len(b) < 2 or (np.ptp(a) == 0 and np.ptp(b) == 0):
        return math.nan
    with warnings.catch_warnings():  # near-identical seeds: scipy warns about precision, the p stands
        warnings.simplefilter("ignore", RuntimeWarning)
        return float(stats.ttest_ind(a, b, equal_var=False).pvalue)


def significance_tier(p: float, mean_a: float, mean_b: float, higher_is_better: bool = True) -> str:
    """"better" / "worse" than the baseline when Welch p < 0.05, else (NaN p included) "tie"."""
    if not (p < ALPHA) or not np.isfinite(mean_a - mean_b) or mean_a == mean_b:
        return "tie"
    return "better" if (mean_a > mean_b) == higher_is_better else "worse"


def _finite(values: Sequence[float]) -> np.ndarray:
    array = np.asarray(values, dtype=float)
    return array[np.isfinite(array)]


# ---------------------------------------------------------------- the aggregate table


def compare(frame: pd.DataFrame, entries: Sequence[CheckpointRecord], mains: dict[tuple[str, str], dict]) -> pd.DataFrame:
    """One row per cell and baseline it was compared with (``COMPARE_COLUMNS``).

    A baseline is compared with every other checkpoint's cell that it has too (same task
    version, protocol, scale and metric), never with itself. A cell compared with nothing
    (it is the baseline, the run has none, or the baseline lacks that cell) still gets one
    row, with empty baseline, delta, p and tier; so does a cell on a custom split whose baseline
    ran on the task's published split (``comparable``). A metric's direction is its task's
    ``higher_is_better`` (tasks declare one), True where the task is unknown.
    """
    if frame.empty:
        return pd.DataFrame(columns=COMPARE_COLUMNS)
    summary = summarize(frame).set_index(CELL)
    values = {key: _finite(group["value"]) for key, group in frame.groupby(CELL, sort=False)}
    provenance = _provenance(frame)
    chosen = [(kind, name) for kind, name in baselines(entries).items() if name]
    rows = []
    for key, cell in summary.iterrows():
        own = {**dict(zip(CELL, key)), "n": cell["n_seeds"], "mean": cell["mean"], "std": cell["std"],
               "ci_low": cell["ci95_low"], "ci_high": cell["ci95_high"], **provenance.loc[key].to_dict()}
        higher = mains.get((own["task"], own["task_version"]), {}).get("higher_is_better", True)
        partners = [(kind, (name, *key[1:])) for kind, name in chosen
                    if name != own["checkpoint"] and (name, *key[1:]) in summary.index
                    and comparable(own["split"], provenance.loc[(name, *key[1:]), "split"])]
        for kind, other in partners or [(None, None)]:
            versus = _versus(own["mean"], values[key], kind, other, summary, values, higher) if other else _NOTHING
            rows.append({**own, **versus})
    return _sorted(pd.DataFrame(rows, columns=COMPARE_COLUMNS))


def _provenance(frame: pd.DataFrame) -> pd.DataFrame:
    """Per cell: imported or not, the imports' sources, the best status, the submitters and the
    bundles (";"-joined, sorted); a hand-made frame without the status columns is local."""
    frame = frame.assign(**{c: frame[c] if c in frame else default for c, default in
                            (("status", "local"), ("submitter", ""), ("bundle", ""), ("split", ""))})
    return frame.groupby(CELL).agg(imported=("imported", "any"), source=("source", _joined),
                                   status=("status", best_status), submitter=("submitter", _joined),
                                   bundle_sha256=("bundle", _joined), split=("split", split_class))


def comparable(split_a: str, split_b: str) -> bool:
    """A row on a custom split is never compared with one on the task's published split."""
    return {split_a, split_b} != {"published", "custom"}


def _joined(values) -> str:
    return ";".join(sorted(set(values) - {""}))


_NOTHING = {"baseline": None, "baseline_kind": None, "baseline_n": None, "baseline_mean": math.nan,
            "delta_pct": math.nan, "p_welch": math.nan, "tier": None}


def _versus(mean_a: float, mine: np.ndarray, kind: str, other: tuple, summary: pd.DataFrame, values: dict,
            higher: bool) -> dict:
    """The comparison fields of one cell against the baseline's cell ``other``."""
    mean_b, p = summary.loc[other, "mean"], welch_p(mine, values[other])
    return {"baseline": other[0], "baseline_kind": kind, "baseline_n": int(summary.loc[other, "n_seeds"]),
            "baseline_mean": mean_b, "delta_pct": relative_delta_pct(mean_a, mean_b), "p_welch": p,
            "tier": significance_tier(p, mean_a, mean_b, higher)}


def _sorted(table: pd.DataFrame) -> pd.DataFrame:
    """Checkpoint, task, version, protocol, scale (largest first), metric, then natural before random."""
    order = table["baseline_kind"].map({"natural": 1, "random": 2}).fillna(0)
    return (table.assign(_order=order)
            .sort_values(["checkpoint", "task", "task_version", "protocol", "scale", "metric", "_order"],
                         ascending=[True, True, True, True, False, True, True], kind="mergesort")
            .drop(columns="_order").reset_index(drop=True))


# ---------------------------------------------------------------- the overall score


RANKED_COLUMNS = ["scale", "rank", "checkpoint", "borda", "mean_rank", "n_cells"]


class Overall(NamedTuple):
    ranked: pd.DataFrame      # scale, rank, checkpoint, borda, mean_rank, n_cells
    incomplete: pd.DataFrame  # scale, checkpoint, missing (list of "task@version/protocol")


def overall(summary: pd.DataFrame, mains: dict[tuple[str, str], dict],
            cells: Optional[Sequence[tuple[str, str, str]]] = None) -> Overall:
    """A Borda count per scale over (task, task version, protocol) cells, on each task's main metric.

    In each cell the complete checkpoints are ranked by mean over seeds (1 = best, ties share
    the average rank) and score ``n_checkpoints - rank`` points; points are summed over cells
    and the final rank is by points (ties share the best rank, ``min``). ``mean_rank`` is
    given beside it. The compared set is every cell at that scale with a finite mean for
    someone (or ``cells``, if given); a checkpoint without a finite mean in any of them is
    listed as incomplete, not ranked. Tasks without a main metric take no part.
    """
    ranked, incomplete = [], []
    if summary.empty:
        return Overall(pd.DataFrame(columns=RANKED_COLUMNS), pd.DataFrame(columns=["scale", "checkpoint", "missing"]))
    main = summary[[mains.get((t, v), {}).get("name") == m
                    for t, v, m in zip(summary["task"], summary["task_version"], summary["metric"])]]
    for scale, at in main.groupby("scale", sort=False):
        table = at.pivot(index="checkpoint", columns=["task", "task_version", "protocol"], values="mean")
        table = table.reindex(columns=pd.MultiIndex.from_tuples(cells)) if cells else table.dropna(axis=1, how="all")
        complete = table.dropna(axis=0, how="any")
        for checkpoint, row in table.drop(index=complete.index).iterrows():
            incomplete.append({"scale": scale, "checkpoint": checkpoint,
                               "missing": [f"{t}@{v}/{p}" for (t, v, p), x in row.items() if not np.isfinite(x)]})
        if complete.empty:
            continue
        direction = [1 if mains[(t, v)]["higher_is_better"] else -1 for t, v, _ in complete.columns]
        ranks = (complete * direction).rank(axis=0, ascending=False, method="average")
        borda = (len(complete) - ranks).sum(axis=1)
        ranked.append(pd.DataFrame({"scale": scale, "rank": borda.rank(ascending=False, method="min").astype(int),
                                    "checkpoint": complete.index, "borda": borda, "mean_rank": ranks.mean(axis=1),
                                    "n_cells": complete.shape[1]}))
    ranked_table = pd.concat(ranked, ignore_index=True) if ranked else pd.DataFrame(columns=RANKED_COLUMNS)
    return Overall(_by_scale(ranked_table[RANKED_COLUMNS], ["rank"]),
                   _by_scale(pd.DataFrame(incomplete, columns=["scale", "checkpoint", "missing"]), []))


def _by_scale(table: pd.DataFrame, then: list[str]) -> pd.DataFrame:
    return table.sort_values(["scale", *then, "checkpoint"], ascending=[False, *[True] * len(then), True],
                             kind="mergesort").reset_index(drop=True)


# ---------------------------------------------------------------- ``ctbench leaderboard export``


def leaderboard_table(results: list[AnyResult]) -> pd.DataFrame:
    """The aggregate table of ``leaderboard export`` (``COMPARE_COLUMNS``) from loaded results."""
    return compare(tidy(results), checkpoint_entries(results), directions(results))


def write_table(table: pd.DataFrame, fmt: str, out: TextIO) -> None:
    """CSV with exactly ``EXPORT_COLUMNS`` and fixed formats (empty = none/undefined), or JSON
    records of every ``COMPARE_COLUMNS`` field (NaN as null), in the table's (stable) order."""
    if fmt == "csv":
        text_columns = [c for c in EXPORT_COLUMNS if c not in FORMATS]
        neutralise_columns(_formatted(table), text_columns).to_csv(out, index=False, lineterminator="\n")
        return
    records = [{k: plain(v) for k, v in row.items()} for row in table.to_dict(orient="records")]
    out.write(json.dumps(records, indent=2, allow_nan=False) + "\n")


FORMATS = {"scale": "{:.10g}", "n": "{:d}", "mean": "{:.6f}", "std": "{:.6f}", "ci_low": "{:.6f}",
           "ci_high": "{:.6f}", "delta_pct": "{:.4f}", "p_welch": "{:.6g}"}


def _formatted(table: pd.DataFrame) -> pd.DataFrame:
    text = table[EXPORT_COLUMNS].astype(object).copy()
    for column, pattern in FORMATS.items():
        text[column] = [("" if _missing(v) else pattern.format(int(v) if column == "n" else float(v)))
                        for v in table[column]]
    return text.fillna("")


def _missing(value) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def plain(value):
    """numpy scalars -> plain values; NaN -> null; floats to 10 significant digits (no 0.8000000000000002)."""
    if isinstance(value, np.generic):
        value = value.item()
    if _missing(value):
        return None
    return float(f"{value:.10g}") if isinstance(value, float) else value
