"""One JSON file per job, written atomically, plus its per-case predictions.

The store is the only state a run keeps: a job is done exactly when its result file
exists, so a killed run resumes where it stopped and never sees a partial result.
Reading back is strict (``read_result``): a file that is not a usable result (bad JSON,
NaN, a missing field, a wrong type: see ``benchmark.results.schema.Result``) is one
``ResultError`` naming the file, which the leaderboard turns into a warning while it builds
from everything else.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Union

import numpy as np

from benchmark.core.atomic import write_json, write_npz
from benchmark.core.errors import DataError
from benchmark.results.job import Job
from benchmark.results.schema import Result


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

    def write(self, job: Job, result: Union[Result, dict], predictions: dict[str, np.ndarray]) -> Path:
        """Predictions first: a result file never points at predictions that are not there.

        A plain dict is checked as ``Result.build`` checks it (an undefined metric becomes null).
        Deflated: a segmentation job's label maps and their truth are mostly background (256 px
        liver-like masks with 0.2 % noisy pixels: 128 KiB -> 1 KiB per test slice, both maps)."""
        result = result if isinstance(result, Result) else Result.build(result)
        write_npz(self.predictions_path(job), compress=True, **predictions)
        path = self.path_for(job)
        write_json(path, result.payload())
        return path

    def iter_results(self) -> Iterator[Result | LoadProblem]:
        """Every result in a stable order; unreadable files are reported, never skipped silently."""
        for _, item in self.iter_files():
            yield item

    def iter_files(self) -> Iterator[tuple[Path, Result | LoadProblem]]:
        for path in sorted(self.root.rglob("*.json")):
            try:
                item: Result | LoadProblem = read_result(path)
            except ResultError as exc:
                item = LoadProblem(path, exc.problem)
            yield path, item

    @staticmethod
    def rewrite(path: Path, result: Result) -> None:
        """Replace a stored result (``rescore``), atomically like the first write."""
        write_json(path, result.payload())


# ---------------------------------------------------------------- reading one result back


class ResultError(DataError):
    """A stored result that cannot be used; ``problem`` is the message without the file name."""

    def __init__(self, problem: str, path: Path):
        self.problem = problem
        super().__init__(problem, path)


def read_result(path: Path) -> Result:
    """One stored result, checked to hold what the leaderboard reads from it.

    Raises ``ResultError`` (a ``DataError``: exit 2, one line naming the file) for anything
    else, so a hand-edited, truncated or foreign file is reported by name instead of
    surfacing later as a KeyError deep inside the statistics.
    """
    payload = _parse(Path(path))
    if not isinstance(payload, dict):
        raise ResultError(f"not a ctbench result (a JSON {_json_type(payload)}, not an object)", path)
    try:
        return Result.from_stored(payload)
    except ValueError as exc:
        raise ResultError(str(exc), path) from None


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


def _json_type(value) -> str:
    return {list: "array", str: "string", bool: "boolean", int: "number", float: "number"}.get(type(value), "null")
