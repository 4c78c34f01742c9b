"""The typed result record (``benchmark.results.schema.Result``): files written by earlier code keep
loading (with the built-in baselines' roles filled in), and anything not a finite, known field is refused."""
import json

import numpy as np
import pytest

from benchmark.core.atomic import canonical_json
from benchmark.results import schema
from benchmark.results.job import Job
from benchmark.results.rescore import rescore
from benchmark.results.schema import MIGRATIONS, RESULT_SCHEMA_VERSION, Result, migrate
from benchmark.results.store import ResultError, ResultStore, read_result

JOB = Job("imagenet", "a" * 64, "phantom-body-region", "1", "linear", "3", 0.1, 42, "demo", 2)
TASK = {"name": "phantom-body-region", "version": "1", "description": "", "domain": "ct", "kind": "classification",
        "class_names": ["head", "chest"], "metrics": ["accuracy", "auc"], "main_metric": "accuracy",
        "higher_is_better": True, "default_scales": [1.0, 0.1], "reader": "embedded",
        "preprocessing": {"windows": [], "channels": 3, "size": 64, "neighbours": 0, "spacing_mm": None},
        "data_layout": "", "embedded": True, "regions": {}}
# A result as the code before typed records wrote it: every section, a checkpoint without a baseline role,
# and a task spec with a field (reader) that the current TaskSpec no longer has.
V1 = {
    "schema_version": 1, "job": JOB.as_dict(), "task": TASK,
    "run_spec": {"checkpoints": ["imagenet"], "tasks": ["phantom-body-region"], "profile": "demo"},
    "checkpoint": {"name": "imagenet", "arch": "resnet50", "weights": None, "sha256": None, "format": "timm",
                   "pretraining_domain": "natural", "method": "supervised", "data": "ImageNet-1k",
                   "input": {"channels": 3, "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]},
                   "demo": False, "description": ""},
    "protocol": {"name": "linear", "version": "3"},
    "main_metric": {"name": "accuracy", "value": 0.75, "higher_is_better": True},
    "metrics": {"accuracy": 0.75, "auc": None},
    "hyperparameters": {"C": 1.0, "path": [0.1, 1.0], "train_cases_seen": 8},
    "counts": {"train_cases": 8, "val_cases": 2, "test_cases": 4, "train_cases_seen": 8, "train_patients": 4,
               "val_patients": 1, "test_patients": 2},
    "splits": {"split_sha256": "b" * 64, "budget_sha256": "c" * 64, "split_manifest": "/w/split.json",
               "budget_manifest": "/w/scale-0.1.json", "budget_floored": True},
    "preprocessing": {"windows": [], "channels": 3, "size": 32, "neighbours": 0, "spacing_mm": None},
    "feature_cache_key": "d" * 16, "checkpoint_load": None, "predictions_file": f"{JOB.job_id}.predictions.npz",
    "provenance": {"ctbench_version": "0.1.0", "git": {"commit": None, "dirty": None}, "packages": {"torch": "2.5"},
                   "python": "3.11.2", "platform": "Linux", "device": "cpu", "device_name": "cpu", "torch_threads": 1,
                   "precision": "fp32", "channels_last": False, "compile": False, "batch_size": 64,
                   "checkpoint_sha256": None, "task_version": "1", "split_sha256": "b" * 64, "data_root": "/w/data",
                   "wall_time_s": 1.25, "worker": {"host": "h", "pid": 1}},
}


def stored(tmp_path, payload, name="result.json"):
    path = tmp_path / name
    path.write_text(json.dumps(payload) if isinstance(payload, dict) else payload)
    return path


def test_a_v1_file_from_before_loads_and_gets_its_built_in_baseline_role(tmp_path):
    result = read_result(stored(tmp_path, V1))
    assert result.job.job_id == JOB.job_id and result.counts.train_patients == 4 and result.splits.budget_floored
    assert result.checkpoint.baseline_role == "natural" and result.checkpoint.get("arch") == "resnet50"
    assert result.task.get("reader") == "embedded" and result.metrics == {"accuracy": 0.75, "auc": None}
    expected = {**V1, "checkpoint": {**V1["checkpoint"], "baseline_role": "natural"}}
    assert result.payload() == expected  # nothing else added, dropped or converted


def test_only_a_missing_role_of_a_built_in_name_is_filled():
    mine = {**V1, "checkpoint": {**V1["checkpoint"], "name": "mine"}, "job": {**V1["job"], "checkpoint": "mine"}}
    assert "baseline_role" not in migrate(mine)["checkpoint"]
    kept = {**V1, "checkpoint": {**V1["checkpoint"], "baseline_role": None}}
    assert migrate(kept)["checkpoint"]["baseline_role"] is None


def test_a_file_without_a_version_is_v1_and_an_unknown_version_is_named(tmp_path):
    assert read_result(stored(tmp_path, {k: v for k, v in V1.items() if k != "schema_version"})).schema_version == 1
    with pytest.raises(ResultError, match="schema_version is 2, not one this ctbench reads"):
        read_result(stored(tmp_path, {**V1, "schema_version": 2}))


def test_the_migration_registry_is_keyed_by_the_version_written(monkeypatch):
    assert set(MIGRATIONS) == {RESULT_SCHEMA_VERSION}
    def v0(payload: dict) -> dict:  # a version that called the metrics "scores"
        return {**{k: v for k, v in payload.items() if k != "scores"}, "metrics": payload["scores"]}

    monkeypatch.setitem(MIGRATIONS, 0, v0)
    old = {k: v for k, v in V1.items() if k != "metrics"} | {"schema_version": 0, "scores": {"accuracy": 0.5}}
    result = Result.from_stored(old)
    assert result.schema_version == 1 and result.metrics == {"accuracy": 0.5}


@pytest.mark.parametrize("content, phrase", [
    (V1 | {"colour": "red"}, "colour is not a field of a ctbench result"),
    (V1 | {"provenance": {**V1["provenance"], "gpu_hours": 3}}, "provenance.gpu_hours is not a field"),
    (V1 | {"counts": {**V1["counts"], "test_cases": 1.5}}, "counts.test_cases is 1.5, not an integer"),
    (V1 | {"checkpoint": {**V1["checkpoint"], "baseline_role": "best"}}, "checkpoint.baseline_role is 'best'"),
    (json.dumps(V1).replace('"value": 0.75', '"value": NaN'), "NaN is not JSON"),
    (json.dumps(V1).replace('"C": 1.0', '"C": Infinity'), "Infinity is not JSON"),
])
def test_unknown_fields_wrong_types_and_non_finite_numbers_are_one_named_line(tmp_path, content, phrase):
    path = stored(tmp_path, content)
    with pytest.raises(ResultError) as caught:
        read_result(path)
    assert str(caught.value).startswith(f"{path}: ") and "\n" not in str(caught.value)
    assert phrase in str(caught.value), str(caught.value)


def test_the_model_itself_refuses_nan_anywhere_and_build_stores_it_as_null():
    with pytest.raises(ValueError, match=r"hyperparameters.path\[1\] is not finite"):
        Result.model_validate({**V1, "hyperparameters": {"path": [0.1, float("nan")]}})
    with pytest.raises(ValueError):
        Result.model_validate({**V1, "metrics": {"auc": float("inf")}})
    built = Result.build({**V1, "metrics": {"accuracy": 0.75, "auc": float("nan")}})
    assert built.metrics["auc"] is None and "NaN" not in canonical_json(built.payload())


def test_the_store_writes_a_result_as_given_and_reads_it_back(tmp_path):
    store = ResultStore(tmp_path)
    result = Result.build({k: v for k, v in V1.items() if k != "schema_version"})
    path = store.write(JOB, result, {"y_true": np.arange(3)})
    assert json.loads(path.read_text()) == V1  # no role added on write: the file is what the run produced
    assert read_result(path).checkpoint.baseline_role == "natural"


@pytest.mark.filterwarnings("ignore:TaskSpec\\(reader=")  # the stored spec predates the reader's removal
def test_rescore_rewrites_a_typed_result(tmp_path):
    store = ResultStore(tmp_path)
    truth = np.array([0, 1, 0, 1])
    probabilities = np.array([[0.9, 0.1], [0.2, 0.8], [0.3, 0.7], [0.4, 0.6]], dtype=np.float32)
    path = store.write(JOB, Result.build(V1), {"case_ids": np.arange(4).astype(str),
                                               "patient_ids": np.array(["p0", "p0", "p1", "p1"]), "y_true": truth,
                                               "probabilities": probabilities})
    report = rescore(store, write=True)
    assert list(report.changed) == [JOB.job_id] and not report.problems
    again = read_result(path)
    assert again.metrics["accuracy"] == again.main_metric.value == 0.75 and again.metrics["auc"] is not None
    assert again.rescored.previous_metrics == {"accuracy": 0.75, "auc": None} and again.counts == read_result(
        path).counts


def test_messages_name_metrics_by_key():
    assert schema._where(("metrics", "auc")) == "metrics['auc']"
    assert schema._where(("rescored", "previous_metrics", "auc")) == "rescored.previous_metrics['auc']"
    assert schema._where(("job", "seed")) == "job.seed"
