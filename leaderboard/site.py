"""Render the static leaderboard: index.html, leaderboard.csv and leaderboard.json.

Everything is sorted and formatted with fixed precision and nothing records the time
of the build, so rebuilding from the same results gives the same bytes. Jinja2
autoescaping covers every user-given string (checkpoint names, metadata).
"""
from __future__ import annotations

import math
from pathlib import Path

import jinja2
import pandas as pd

from benchmark.atomic import atomic_open, canonical_json
from benchmark.store import ResultStore

from .aggregate import load, summarize, tidy


def _fmt(value: float, digits: int = 3) -> str:
    return "–" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.{digits}f}"


def _entries(results: list[dict]) -> list[dict]:
    """One row per checkpoint with its declared spec (taken from its last result in job-id order)."""
    by_name = {r["checkpoint"]["name"]: r["checkpoint"] for r in sorted(results, key=lambda r: r["job"]["job_id"])}
    return [by_name[name] for name in sorted(by_name)]


def _main_tables(results: list[dict], summary: pd.DataFrame) -> list[dict]:
    """One table per task version x protocol, on the task's main metric, a column per scale."""
    mains = {(r["job"]["task"], r["job"]["task_version"]): r["main_metric"] for r in results}
    domains = {(r["job"]["task"], r["job"]["task_version"]): r["task"]["domain"] for r in results}
    budgets = _budget_labels(results)
    tables = []
    for (task, version, protocol), cell in summary.groupby(["task", "task_version", "protocol"], sort=True):
        main = mains[(task, version)]
        cell = cell[cell["metric"] == main["name"]]
        scales = sorted(cell["scale"].unique(), reverse=True)
        rows = []
        for checkpoint, group in cell.groupby("checkpoint", sort=True):
            by_scale = {row.scale: row for row in group.itertuples()}
            rows.append({"checkpoint": checkpoint, "cells": [
                {"mean": _fmt(by_scale[s].mean), "std": _fmt(by_scale[s].std), "low": _fmt(by_scale[s].ci95_low),
                 "high": _fmt(by_scale[s].ci95_high), "n": by_scale[s].n_seeds} if s in by_scale else None
                for s in scales]})
        tables.append({"task": task, "version": version, "protocol": protocol, "metric": main["name"],
                       "domain": domains[(task, version)], "higher_is_better": main["higher_is_better"],
                       "scales": [{"scale": f"{s:.4g}", "budget": budgets[(task, version, protocol, s)]}
                                  for s in scales],
                       "rows": rows})
    return tables


def _budget_labels(results: list[dict]) -> dict[tuple, str]:
    """The labelled cases each scale really used (train + val), so a floored budget is visible."""
    used: dict[tuple, set[int]] = {}
    for r in results:
        key = (r["job"]["task"], r["job"]["task_version"], r["job"]["protocol"], float(r["job"]["scale"]))
        used.setdefault(key, set()).add(r["counts"]["train_cases"] + r["counts"]["val_cases"])
    return {key: (f"{min(v)}" if len(v) == 1 else f"{min(v)}–{max(v)}") + " labelled cases"
            for key, v in used.items()}


def build_site(store: ResultStore, out_dir: Path) -> tuple[Path, list[str]]:
    """Returns the index.html path and the warnings (unreadable result files, by name)."""
    results, problems = load(store)
    frame = tidy(results)
    summary = summarize(frame) if len(frame) else pd.DataFrame(
        columns=["checkpoint", "task", "task_version", "protocol", "scale", "metric", "n_seeds", "mean", "std",
                 "ci95_low", "ci95_high", "seeds"])
    warnings = [f"{p.path}: {p.problem}" for p in problems]
    env = jinja2.Environment(loader=jinja2.PackageLoader("leaderboard", "templates"),
                             autoescape=True, undefined=jinja2.StrictUndefined, keep_trailing_newline=True)
    html = env.get_template("index.html.j2").render(
        entries=_entries(results), tables=_main_tables(results, summary), warnings=warnings, n_results=len(results))
    out_dir.mkdir(parents=True, exist_ok=True)
    with atomic_open(out_dir / "index.html") as handle:
        handle.write(html)
    with atomic_open(out_dir / "leaderboard.csv") as handle:
        summary.drop(columns=["seeds"]).to_csv(handle, index=False, float_format="%.6g", lineterminator="\n")
    with atomic_open(out_dir / "leaderboard.json") as handle:
        handle.write(canonical_json(_json_ready(summary)))
    return out_dir / "index.html", warnings


def _json_ready(summary: pd.DataFrame) -> list[dict]:
    records = summary.to_dict(orient="records")
    return [{k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in r.items()} for r in records]
