"""One JSON file per job, written atomically, plus its per-case predictions.

The store is the only state a run keeps: a job is done exactly when its result file
exists, so a killed run resumes where it stopped and never sees a partial result.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np

from .atomic import write_json, write_npz
from .grid import Job

RESULT_SCHEMA_VERSION = 1


@dataclass(frozen=True)
class LoadProblem:
    path: Path
    problem: str


class ResultStore:
    def __init__(self, root: Path):
        self.root = Path(root)

    def path_for(self, job: Job) -> Path:
        return self.root / job.checkpoint / job.task / f"{job.job_id}.json"

    def predictions_path(self, job: Job) -> Path:
        return self.path_for(job).with_suffix(".predictions.npz")

    def is_done(self, job: Job) -> bool:
        return self.path_for(job).is_file()

    def write(self, job: Job, result: dict, predictions: dict[str, np.ndarray]) -> Path:
        """Predictions first: a result file never points at predictions that are not there."""
        write_npz(self.predictions_path(job), **predictions)
        path = self.path_for(job)
        write_json(path, _finite_or_none({"schema_version": RESULT_SCHEMA_VERSION, **result}))
        return path

    def iter_results(self) -> Iterator[dict | LoadProblem]:
        """Every result in a stable order; unreadable files are reported, never skipped silently."""
        for _, item in self.iter_files():
            yield item

    def iter_files(self) -> Iterator[tuple[Path, dict | LoadProblem]]:
        for path in sorted(self.root.rglob("*.json")):
            try:
                payload = json.loads(path.read_text())
            except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
                yield path, LoadProblem(path, f"not valid JSON ({exc})")
                continue
            if not isinstance(payload, dict) or "job" not in payload or "metrics" not in payload:
                yield path, LoadProblem(path, "not a ctbench result (no 'job' or 'metrics')")
                continue
            yield path, payload

    @staticmethod
    def rewrite(path: Path, result: dict) -> None:
        """Replace a stored result (``rescore``), atomically like the first write."""
        write_json(path, _finite_or_none(result))


def _finite_or_none(value):
    """JSON has no NaN; an undefined metric (one class in the test set) becomes null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite_or_none(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite_or_none(v) for v in value]
    return value
