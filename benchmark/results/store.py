"""One JSON file per job, written atomically, plus its per-case predictions.

The store is the only state a run keeps: a job is done exactly when its result file
exists, so a killed run resumes where it stopped and never sees a partial result.
Reading back is strict (``read_result``): a file that is not a usable result (bad JSON,
NaN, a missing field, a wrong type) is one ``ResultError`` naming the file, which the
leaderboard turns into a warning while it builds from everything else.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np

from benchmark.core.atomic import write_json, write_npz
from benchmark.core.errors import DataError
from benchmark.results.job import Job

RESULT_SCHEMA_VERSION = 1
MAX_INT = 2**63  # counts and seeds must fit numpy's int64, which the aggregate tables use


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
                item: dict | LoadProblem = read_result(path)
            except ResultError as exc:
                item = LoadProblem(path, exc.problem)
            yield path, item

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


# ---------------------------------------------------------------- reading one result back


class ResultError(DataError):
    """A stored result that cannot be used; ``problem`` is the message without the file name."""

    def __init__(self, problem: str, path: Path):
        self.problem = problem
        super().__init__(problem, path)


# (dotted key, expected kind, required when its parent is there); null counts as absent where optional
SCHEMA = (
    ("job", "object", True), ("job.job_id", "string", True), ("job.checkpoint", "string", True),
    ("job.checkpoint_sha256", "string", True), ("job.task", "string", True), ("job.task_version", "string", True),
    ("job.protocol", "string", True), ("job.protocol_version", "string", True), ("job.profile", "string", True),
    ("job.scale", "fraction", True), ("job.seed", "count", True), ("job.split_version", "count", False),
    ("metrics", "object", True), ("checkpoint", "object", True), ("checkpoint.name", "string", True),
    ("checkpoint.pretraining_domain", "string", False), ("checkpoint.sha256", "string", False),
    ("task", "object", True), ("task.domain", "string", False),
    ("main_metric", "object", False), ("main_metric.name", "string", True),
    ("main_metric.higher_is_better", "boolean", True), ("main_metric.value", "number", False),
    ("counts", "object", False), ("counts.train_cases", "count", True), ("counts.val_cases", "count", True),
    ("provenance", "object", False), ("imported", "object", False), ("imported.source", "string", True),
    ("predictions_file", "string", False),
)
KINDS = {
    "object": lambda v: isinstance(v, dict),
    "string": lambda v: isinstance(v, str),
    "boolean": lambda v: isinstance(v, bool),
    "number": lambda v: _is_number(v),
    "fraction": lambda v: _is_number(v) and 0 < v <= 1,
    "count": lambda v: isinstance(v, int) and not isinstance(v, bool) and 0 <= v < MAX_INT,
}


def read_result(path: Path) -> dict:
    """One stored result, checked to hold what the leaderboard reads from it.

    Raises ``ResultError`` (a ``DataError``: exit 2, one line naming the file) for anything
    else, so a hand-edited, truncated or foreign file is reported by name instead of
    surfacing later as a KeyError deep inside the statistics.
    """
    payload = _parse(Path(path))
    problem = result_problem(payload)
    if problem:
        raise ResultError(problem, path)
    return payload


def _parse(path: Path):
    """Strict JSON in UTF-8: no NaN or Infinity (the store writes null), no number too big for a float."""
    try:
        text = path.read_bytes().decode("utf-8")
        payload = json.loads(text, parse_constant=_refuse_constant, parse_float=_finite_float)
    except OSError as exc:
        raise ResultError(f"cannot be read ({exc.strerror or exc})", path) from None
    except UnicodeError as exc:
        raise ResultError(f"not valid UTF-8 text ({exc.reason} at byte {exc.start})", path) from None
    except RecursionError:
        raise ResultError("not valid JSON (nested too deeply)", path) from None
    except ValueError as exc:  # json.JSONDecodeError and the two refusals below
        raise ResultError(f"not valid JSON ({exc})", path) from None
    try:
        json.dumps(payload, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:  # "\ud800" parses, but no page or file can hold it
        raise ResultError("holds a lone surrogate (an escape like \\ud800), which is not text", path) from None
    except RecursionError:
        raise ResultError("not valid JSON (nested too deeply)", path) from None
    return payload


def _refuse_constant(name: str):
    raise ValueError(f"{name} is not JSON; an undefined value is stored as null")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"number {text[:20]} is too large for a float")
    return value


def result_problem(payload) -> str | None:
    """The first reason ``payload`` is not a usable result, or None."""
    if not isinstance(payload, dict):
        return f"not a ctbench result (a JSON {_json_type(payload)}, not an object)"
    for key, kind, required in SCHEMA:
        parent, _, name = key.rpartition(".")
        section = payload if not parent else payload.get(parent)
        if not isinstance(section, dict):
            continue  # an optional parent that is absent (a required one was reported already)
        value = section.get(name)
        if value is None and not required:
            continue
        if value is None and name not in section:
            return f"not a ctbench result (no {key!r})"
        if not KINDS[kind](value):
            return f"{key} is {_shown(value)}, not {_article(kind)}"
    return _metrics_problem(payload["metrics"]) or _consistency_problem(payload)


def _metrics_problem(metrics: dict) -> str | None:
    for name, value in sorted(metrics.items()):
        if value is not None and not _is_number(value):
            return f"metrics[{_shown(name)}] is {_shown(value)}, not a number or null"
    return None


def _consistency_problem(payload: dict) -> str | None:
    """The site groups rows by the job's checkpoint and describes them by the checkpoint spec."""
    if payload["checkpoint"]["name"] != payload["job"]["checkpoint"]:
        return (f"checkpoint.name {_shown(payload['checkpoint']['name'])} differs from job.checkpoint "
                f"{_shown(payload['job']['checkpoint'])}")
    return None


def _is_number(value) -> bool:
    """A finite int or float (not a bool); a huge int that no float holds is not a number here."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    try:
        return math.isfinite(float(value))
    except OverflowError:
        return False


def _json_type(value) -> str:
    return {list: "array", str: "string", bool: "boolean", int: "number", float: "number"}.get(type(value), "null")


def _article(kind: str) -> str:
    return {"object": "an object", "count": "an integer from 0 to 2**63 - 1",
            "fraction": "a number in (0, 1]"}.get(kind, f"a {kind}")


def _shown(value) -> str:
    """A short one-line rendering of a bad value for the message."""
    text = repr(value) if isinstance(value, str) else json.dumps(value, ensure_ascii=True)
    return text if len(text) <= 40 else text[:37] + "..."
