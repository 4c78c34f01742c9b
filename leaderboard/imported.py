"""Reading imports back: the rows ``ctbench results import`` stored, as result-shaped records.

``importer.py`` is the write side (it checks a CSV against what is stored, which it reads
with ``aggregate.load``); this module is what ``aggregate.load`` uses to read the stored
imports, so the two never import each other.

An ``ImportedResult`` has the attributes of a ``Result`` that the leaderboard reads (``job``,
``metrics``, ``checkpoint``, ``task``, ``main_metric``, ``imported``, ``counts``), so the tables
treat both alike; it has no counts, predictions or provenance.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Optional, Union

from pydantic import StrictInt, StrictStr, ValidationError

from benchmark.core.workdir import Workdir
from benchmark.results.schema import (
    CheckpointRecord,
    Counts,
    Fraction,
    ImportSource,
    MainMetric,
    Metrics,
    Record,
    Result,
    TaskRecord,
    builtin_baseline_role,
    problem,
)
from benchmark.results.store import LoadProblem

JOB_KEY = ("checkpoint", "task", "task_version", "protocol", "scale", "seed")  # one imported job per key and source


def imported_dir(workdir: Workdir) -> Path:
    return workdir.root / "imported"


class ImportedJob(Record):
    job_id: StrictStr
    checkpoint: StrictStr
    task: StrictStr
    task_version: StrictStr
    protocol: StrictStr
    scale: Fraction
    seed: StrictInt


class ImportedResult(Record):
    """The per-seed values of one imported job, shaped like a ``Result``."""

    job: ImportedJob
    metrics: Metrics
    checkpoint: CheckpointRecord
    task: TaskRecord
    main_metric: Optional[MainMetric] = None
    imported: ImportSource
    counts: Optional[Counts] = None  # never known for an imported row


AnyResult = Union[Result, ImportedResult]


def load_imported(folder: Path) -> tuple[list[ImportedResult], list[LoadProblem]]:
    """Every stored import as result-shaped records (one per job key and source), in file order."""
    results, problems = [], []
    for path in sorted(Path(folder).glob("*.json")):
        try:
            payload = json.loads(path.read_text())
            results += _as_results(path, payload)
        except ValidationError as exc:
            problems.append(LoadProblem(path, f"not a readable ctbench import ({problem(exc)})"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError) as exc:
            problems.append(LoadProblem(path, f"not a readable ctbench import ({type(exc).__name__}: {exc})"))
    return results, problems


def _as_results(path: Path, payload: dict) -> list[ImportedResult]:
    tasks = {(t["task"], t["task_version"]): t for t in payload["tasks"]}
    checkpoints = {c["name"]: c for c in payload["checkpoints"]}
    jobs: dict[tuple, dict] = {}
    for row in payload["rows"]:
        job_key = (*(row[k] for k in JOB_KEY), row["source"])
        if job_key not in jobs:
            jobs[job_key] = _result(path, row, tasks[(row["task"], row["task_version"])],
                                    checkpoints[row["checkpoint"]])
        jobs[job_key]["metrics"][row["metric"]] = row["value"]
    for result in jobs.values():
        if result["main_metric"] is not None:
            result["main_metric"]["value"] = result["metrics"].get(result["main_metric"]["name"])
    return [ImportedResult.model_validate(result) for result in jobs.values()]


def _result(path: Path, row: dict, task: dict, checkpoint: dict) -> dict:
    job = {k: row[k] for k in JOB_KEY}
    job["job_id"] = (f"imported:{path.stem}:{row['task']}--{row['protocol']}--{row['checkpoint']}"
                     f"--s{row['scale']:g}--seed{row['seed']}")
    main = task["main_metric"]
    return {
        "job": job,
        # an imported checkpoint plays a baseline's part exactly where a stored v1 result of that name would
        "checkpoint": {"name": checkpoint["name"], "pretraining_domain": checkpoint["pretraining_domain"],
                       "baseline_role": builtin_baseline_role(checkpoint["name"])},
        # direction and headline metrics ride on the task record: a task without a main metric still has them
        "task": {"name": task["task"], "version": task["task_version"], "domain": task["domain"],
                 "higher_is_better": task.get("higher_is_better", True),
                 "headline_metrics": task.get("headline_metrics") or ([main] if main else [])},
        "main_metric": None if main is None else {"name": main, "value": None,
                                                  "higher_is_better": task["higher_is_better"]},
        "metrics": {},
        "imported": {"source": row["source"], "file": path.name},
    }
