import numpy as np
import pytest

from benchmark.core.errors import DataError
from benchmark.data.splits import budget_size, indices_for, make_budget, make_split, pool_patients


def dataset(n_patients=30, slices=4, classes=3):
    """One label per patient, as in tasks whose class is a property of the patient."""
    patients = np.repeat([f"P{i:03d}" for i in range(n_patients)], slices)
    labels = np.repeat(np.arange(n_patients) % classes, slices)
    return patients, labels


def label_of(patients, labels, patient):
    return int(labels[patients == patient][0])


def test_split_is_patient_grouped_and_stratified(tmp_path):
    patients, labels = dataset()
    split = make_split("t", "1", "fp", patients, labels, tmp_path / "split.json")
    test, pool = set(split.payload["test_patients"]), set(pool_patients(split))
    assert not test & pool and test | pool == set(patients)
    assert split.payload["stratified"]
    assert {label_of(patients, labels, p) for p in test} == {0, 1, 2}
    assert sorted(split.payload["pool_strata"]) == ["0", "1", "2"]
    assert split.payload["counts"]["test_cases"] == 4 * len(test)


def test_manifest_is_stable_and_a_changed_manifest_is_refused(tmp_path):
    patients, labels = dataset()
    first = make_split("t", "1", "fp", patients, labels, tmp_path / "split.json")
    again = make_split("t", "1", "fp", patients, labels, tmp_path / "split.json")
    assert first.sha256 == again.sha256
    with pytest.raises(DataError, match="split.json"):
        make_split("t", "1", "other-data", patients, labels, tmp_path / "split.json")


def test_budgets_are_nested_stratified_and_validate_in_budget(tmp_path):
    patients, labels = dataset(n_patients=60)
    split = make_split("t", "1", "fp", patients, labels, tmp_path / "split.json")
    budgets = {s: make_budget(split, 42, s, patients, tmp_path / f"b{s}.json").payload for s in (1.0, 0.5, 0.1)}
    members = {s: set(b["train_patients"] + b["val_patients"]) for s, b in budgets.items()}
    assert members[0.1] < members[0.5] < members[1.0] == set(pool_patients(split))
    for s, b in budgets.items():
        expected = sum(budget_size(s, len(m)) for m in split.payload["pool_strata"].values())
        assert len(members[s]) == expected
        assert not set(b["val_patients"]) & set(b["train_patients"])
        assert not members[s] & set(split.payload["test_patients"])
        assert {label_of(patients, labels, p) for p in b["train_patients"]} == {0, 1, 2}  # every class, any scale
        assert {label_of(patients, labels, p) for p in b["val_patients"]} == {0, 1, 2}
        assert b["counts"]["train_cases"] == len(indices_for(patients, b["train_patients"]))
    other_seed = make_budget(split, 1, 0.5, patients, tmp_path / "seed1.json").payload
    assert other_seed["train_patients"] != budgets[0.5]["train_patients"]


def test_tiny_budgets_are_floored_and_say_so(tmp_path):
    patients, labels = dataset(n_patients=20, classes=1)
    split = make_split("t", "1", "fp", patients, labels, tmp_path / "split.json")
    assert list(split.payload["pool_strata"]) == ["all"]
    budget = make_budget(split, 42, 0.01, patients, tmp_path / "b.json").payload
    assert budget["floored"]
    assert len(budget["train_patients"]) == 1 and len(budget["val_patients"]) == 1
    assert not make_budget(split, 42, 1.0, patients, tmp_path / "full.json").payload["floored"]


def test_too_few_patients_is_a_clear_error(tmp_path):
    patients, labels = dataset(n_patients=2)
    with pytest.raises(DataError, match="at least 3"):
        make_split("t", "1", "fp", patients, labels, tmp_path / "split.json")
