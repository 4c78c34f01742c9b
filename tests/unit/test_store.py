import json
import os

import numpy as np
import pytest

from benchmark.core import atomic
from benchmark.results.job import Job
from benchmark.results.schema import Result
from benchmark.results.store import LoadProblem, ResultStore

JOB = Job("random", "a" * 64, "t1", "1", "linear", "1", 0.1, 42, "demo")


def result(value=0.5):
    """The least a result must hold for the leaderboard: job, metrics, checkpoint name and task."""
    return {"job": JOB.as_dict(), "metrics": {"accuracy": value, "auc": float("nan")},
            "checkpoint": {"name": JOB.checkpoint}, "task": {"domain": "ct"}}


def test_write_then_done_and_nan_becomes_null(tmp_path):
    store = ResultStore(tmp_path)
    assert not store.is_done(JOB)
    path = store.write(JOB, result(), {"y_true": np.arange(3)})
    assert store.is_done(JOB)
    payload = json.loads(path.read_text())
    assert payload["metrics"] == {"accuracy": 0.5, "auc": None}
    assert store.predictions_path(JOB).is_file()
    assert list(tmp_path.rglob("*.tmp")) == []


def test_a_failed_write_leaves_the_previous_result_intact(tmp_path, monkeypatch):
    store = ResultStore(tmp_path)
    store.write(JOB, result(0.5), {"y_true": np.arange(3)})
    before = store.path_for(JOB).read_bytes()

    def disk_full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", disk_full)
    with pytest.raises(OSError):
        store.write(JOB, result(0.9), {"y_true": np.arange(3)})
    assert store.path_for(JOB).read_bytes() == before
    assert [p for p in tmp_path.rglob("*") if p.name.endswith(".tmp")] == []


def test_malformed_results_are_reported_by_name_not_skipped(tmp_path):
    store = ResultStore(tmp_path)
    store.write(JOB, result(), {"y_true": np.arange(3)})
    bad = tmp_path / "random" / "t1" / "broken.json"
    bad.write_text("{not json")
    other = tmp_path / "random" / "t1" / "other.json"
    other.write_text('{"hello": 1}')
    items = list(store.iter_results())
    problems = [i for i in items if isinstance(i, LoadProblem)]
    assert {p.path.name for p in problems} == {"broken.json", "other.json"}
    assert sum(isinstance(i, Result) for i in items) == 1


def test_canonical_json_is_byte_stable():
    assert atomic.canonical_json({"b": 1, "a": [1, 2]}) == atomic.canonical_json({"a": [1, 2], "b": 1})
    with pytest.raises(ValueError):
        atomic.canonical_json({"x": float("nan")})


def test_segmentation_predictions_are_stored_deflated_and_read_back_exactly(tmp_path):
    """Label maps are mostly background: 64 slices of 128 px must take well under their raw size."""
    store = ResultStore(tmp_path)
    masks = np.zeros((64, 128, 128), np.uint8)
    masks[:, 40:90, 30:80] = 1
    masks[::3, 50:60, 50:60] = 2
    store.write(JOB, result(), {"masks": masks, "y_true": masks, "patient_ids": np.array(["p"] * 64)})
    size = store.predictions_path(JOB).stat().st_size
    assert size < masks.nbytes / 20, f"{size} bytes for {2 * masks.nbytes} of label maps"
    loaded = atomic.read_npz(store.predictions_path(JOB))
    assert np.array_equal(loaded["masks"], masks) and loaded["masks"].dtype == np.uint8
