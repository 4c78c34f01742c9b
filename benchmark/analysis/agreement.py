"""Who knew what: on which test cases each checkpoint was right, and whether they erred together.

If the checkpoints erred independently, a right/wrong pattern (say right, wrong, right) would
occur with the product of the matching marginal accuracies (p1 (1 - p2) p3). An all-wrong
pattern seen far more often than that product says the checkpoints share blind spots; an
all-right one seen less often says they know different things, which an ensemble could use.
"""
from __future__ import annotations

import itertools
from collections import Counter
from pathlib import Path
from typing import Optional

import numpy as np

from benchmark.core.atomic import read_npz
from benchmark.core.specs import CheckpointSpec, TaskSpec
from benchmark.evaluation.protocols import PROTOCOLS
from benchmark.results.job import Job
from benchmark.results.store import ResultStore

MAX_CHECKPOINTS = 8  # 2**8 patterns: beyond that the table says nothing a reader could take in
MULTILABEL_THRESHOLD = 0.5


def correctness(kind: str, y_true: np.ndarray, predictions: dict[str, np.ndarray]) -> np.ndarray:
    """Per case, True where the prediction was right.

    classification: argmax of the probabilities equals the label. multilabel: exact match,
    every label's probability >= 0.5 exactly where the label is present. Segmentation has no
    per-case right or wrong without an arbitrary Dice cut-off, so it is refused.
    """
    if kind == "classification":
        return np.argmax(predictions["probabilities"], 1) == y_true
    if kind == "multilabel":
        return np.all((predictions["probabilities"] >= MULTILABEL_THRESHOLD) == (y_true > 0), 1)
    raise ValueError(f"who-knew-what is not defined for {kind} tasks")


def pattern_table(correct: dict[str, np.ndarray]) -> dict:
    """Observed vs independent-error frequency of every right/wrong pattern.

    ``correct`` maps checkpoint -> bool per case (same cases, same order). A pattern is a
    string with one character per checkpoint in that order, "1" right and "0" wrong; all
    2**k patterns are listed, all-right first.
    """
    names = list(correct)
    matrix = np.stack([np.asarray(correct[n], bool) for n in names], 1)
    n_cases = len(matrix)
    accuracy = matrix.mean(0)
    observed = Counter("".join("1" if v else "0" for v in row) for row in matrix)
    rows = []
    for bits in itertools.product((1, 0), repeat=len(names)):
        key = "".join(map(str, bits))
        expected = float(np.prod([a if b else 1 - a for a, b in zip(accuracy, bits)]))
        rows.append({"pattern": key, "right": [n for n, b in zip(names, bits) if b],
                     "observed_count": observed[key], "observed_fraction": observed[key] / n_cases,
                     "expected_fraction": expected, "expected_count": expected * n_cases})
    return {"checkpoints": names, "cases": n_cases, "accuracy": dict(zip(names, accuracy.tolist())),
            "patterns": rows}


def stored_correctness(store: ResultStore, task: TaskSpec, checkpoints: list[CheckpointSpec], protocol: str,
                       scale: float, seed: int, profile: str) -> tuple[dict[str, np.ndarray], list[str]]:
    """({checkpoint: right per case}, checkpoints with no stored job), cases aligned by case id.

    The job is looked up by its exact id (checkpoint bytes, task and protocol versions
    included), so predictions of an older file or protocol are never mixed in.
    """
    found, missing = {}, []
    for checkpoint in checkpoints:
        path = _predictions_path(store, task, checkpoint, protocol, scale, seed, profile)
        if path is None:
            missing.append(checkpoint.name)
            continue
        stored = read_npz(path)
        found[checkpoint.name] = (stored["case_ids"], correctness(task.kind, stored["y_true"], stored))
    return _align(found), missing


def _predictions_path(store: ResultStore, task: TaskSpec, checkpoint: CheckpointSpec, protocol: str, scale: float,
                      seed: int, profile: str) -> Optional[Path]:
    job = Job(checkpoint.name, checkpoint.sha256 or "", task.name, task.version, protocol,
              PROTOCOLS.get(protocol).version, float(scale), int(seed), profile)
    path = store.predictions_path(job)
    return path if store.is_done(job) and path.is_file() else None


def _align(found: dict[str, tuple[np.ndarray, np.ndarray]]) -> dict[str, np.ndarray]:
    """The cases every checkpoint was scored on, in the first checkpoint's order."""
    if not found:
        return {}
    common = set.intersection(*(set(ids.tolist()) for ids, _ in found.values()))
    order = [c for c in next(iter(found.values()))[0].tolist() if c in common]
    out = {}
    for name, (ids, right) in found.items():
        position = {c: i for i, c in enumerate(ids.tolist())}
        out[name] = right[[position[c] for c in order]]
    return out
