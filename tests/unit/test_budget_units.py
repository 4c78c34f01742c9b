"""Budget options: without a hold-out (all of the budget trains) and drawn per slice (the study's unit)."""
import hashlib
import json

import numpy as np
import pytest

from benchmark.core.errors import DataError
from benchmark.data.split_verify import verify
from benchmark.data.splits import (
    MIN_BUDGET_SLICES,
    BudgetManifest,
    budget_rows,
    budget_size,
    indices_for,
    make_budget,
    make_split,
    pool_patients,
)


def dataset(n_patients=30, slices=5, classes=3):
    patients = np.repeat([f"P{i:03d}" for i in range(n_patients)], slices)
    labels = np.repeat(np.arange(n_patients) % classes, slices)
    cases = np.asarray([f"{p}-s{i % slices}" for i, p in enumerate(patients)])
    return patients, labels, cases


@pytest.fixture
def world(tmp_path):
    patients, labels, cases = dataset()
    split = make_split("t", "1", "fp", patients, labels, tmp_path / "split.json")
    return split, patients, labels, cases


def slice_budget(world, tmp_path, seed, scale, holdout=True):
    split, patients, _, cases = world
    suffix = "" if holdout else "-noval"
    return make_budget(split, seed, scale, patients, tmp_path / f"seed{seed}" / f"scale-{scale:g}-slices{suffix}.json",
                       holdout=holdout, unit="slice", case_ids=cases)


def drawn(budget):
    return budget.payload["train_cases"] + budget.payload["val_cases"]


def test_slice_budgets_are_redrawn_per_seed(world, tmp_path):
    first, second = (slice_budget(world, tmp_path, seed, 0.3) for seed in (0, 1))
    assert len(drawn(first)) == len(drawn(second))
    assert set(drawn(first)) != set(drawn(second))
    assert first.payload["unit"] == "slice" and "holdout" not in first.payload


def test_slice_budgets_nest_across_scales_within_a_seed(world, tmp_path):
    split, patients, _, cases = world
    budgets = {scale: slice_budget(world, tmp_path, 3, scale) for scale in (0.05, 0.2, 0.6, 1.0)}
    members = {scale: set(drawn(b)) for scale, b in budgets.items()}
    assert members[0.05] < members[0.2] < members[0.6] < members[1.0]
    assert members[1.0] == set(cases[np.isin(patients, pool_patients(split))])
    for scale in budgets:
        per_stratum = [5 * len(m) for m in split.payload["pool_strata"].values()]
        assert len(members[scale]) == sum(budget_size(scale, n, MIN_BUDGET_SLICES) for n in per_stratum)


def test_no_test_patient_slice_enters_a_slice_budget(world, tmp_path):
    split, patients, _, cases = world
    budget = slice_budget(world, tmp_path, 0, 1.0)
    owners = set(patients[np.isin(cases, drawn(budget))])
    assert owners and not owners & set(split.payload["test_patients"])
    assert owners == set(budget.payload["train_patients"]) | set(budget.payload["val_patients"])


def test_slice_hold_out_is_a_fifth_of_the_slices_and_counts_shared_patients(world, tmp_path):
    _, patients, _, cases = world
    payload = slice_budget(world, tmp_path, 0, 1.0).payload
    assert not set(payload["train_cases"]) & set(payload["val_cases"])
    n_drawn = len(payload["train_cases"]) + len(payload["val_cases"])
    assert n_drawn == 5 * len(pool_patients(world[0]))  # scale 1: every pool slice
    assert len(payload["val_cases"]) == pytest.approx(0.2 * n_drawn, abs=len(world[0].payload["pool_strata"]))
    shared = set(payload["train_patients"]) & set(payload["val_patients"])
    assert shared and payload["counts"]["shared_patients"] == len(shared)  # the study's design: patients in both
    assert payload["counts"]["train_cases"] == len(payload["train_cases"])


def test_tiny_slice_budgets_are_floored_and_keep_two_training_slices(world, tmp_path):
    split = world[0]
    for holdout in (True, False):
        payload = slice_budget(world, tmp_path, 0, 0.001, holdout).payload
        assert payload["floored"]
        assert len(payload["train_cases"]) >= 2 * len(split.payload["pool_strata"])
    assert not slice_budget(world, tmp_path, 0, 1.0).payload["floored"]


@pytest.mark.parametrize("unit", ["patient", "slice"])
def test_without_hold_out_the_whole_budget_trains(unit, world, tmp_path):
    split, patients, _, cases = world
    kept = make_budget(split, 42, 0.5, patients, tmp_path / "with.json", unit=unit, case_ids=cases)
    free = make_budget(split, 42, 0.5, patients, tmp_path / "without.json", holdout=False, unit=unit, case_ids=cases)
    assert free.payload["val_patients"] == [] and free.payload["holdout"] is False
    assert free.payload["counts"]["val_patients"] == 0 and free.payload["counts"]["val_cases"] == 0
    key = "train_cases" if unit == "slice" else "train_patients"
    assert set(free.payload[key]) == set(kept.payload[key]) | set(kept.payload[key.replace("train", "val")])
    assert free.payload["counts"]["train_cases"] == kept.payload["counts"]["train_cases"] + kept.payload["counts"]["val_cases"]
    assert free.sha256 != kept.sha256
    BudgetManifest.model_validate(free.payload)
    train, val = budget_rows(free, patients, cases)
    assert len(val) == 0 and len(train) == free.payload["counts"]["train_cases"]


def test_budget_rows_serve_either_unit(world, tmp_path):
    split, patients, _, cases = world
    by_patient = make_budget(split, 0, 0.5, patients, tmp_path / "p.json")
    train, val = budget_rows(by_patient, patients, cases)
    assert np.array_equal(train, indices_for(patients, by_patient.payload["train_patients"]))
    assert np.array_equal(val, indices_for(patients, by_patient.payload["val_patients"]))
    by_slice = slice_budget(world, tmp_path, 0, 0.5)
    train, val = budget_rows(by_slice, patients[::-1], cases[::-1])  # rows, whatever the order of the set
    assert sorted(cases[::-1][train]) == sorted(by_slice.payload["train_cases"])
    assert sorted(cases[::-1][val]) == sorted(by_slice.payload["val_cases"])
    with pytest.raises(DataError, match="not in this slice set"):
        keep = cases != by_slice.payload["train_cases"][0]
        budget_rows(by_slice, patients[keep], cases[keep])


def test_a_slice_budget_needs_case_ids(world, tmp_path):
    split, patients, _, _ = world
    with pytest.raises(ValueError, match="case_ids"):
        make_budget(split, 0, 0.5, patients, tmp_path / "b.json", unit="slice")
    with pytest.raises(ValueError, match="unit"):
        make_budget(split, 0, 0.5, patients, tmp_path / "b.json", unit="case")


def fake_cache(slices_dir, patients, cases):
    folder = slices_dir / "t@1" / "key"
    folder.mkdir(parents=True)
    (folder / "meta.json").write_text(json.dumps({"data_fingerprint": "fp"}))
    np.save(folder / "patient_ids.npy", patients)
    np.save(folder / "case_ids.npy", cases)


def rewrite(path, edit):
    payload = edit(json.loads(path.read_text()))
    path.write_text(json.dumps(payload, indent=2, sort_keys=True) + "\n")
    path.with_name(path.name + ".sha256").write_text(f"{hashlib.sha256(path.read_bytes()).hexdigest()}  {path.name}\n")


def test_verify_accepts_every_unit_and_hold_out_and_flags_edits(tmp_path):
    patients, labels, cases = dataset()
    root = tmp_path / "splits" / "t@1" / "x"
    split = make_split("t", "1", "fp", patients, labels, root / "split.json")
    fake_cache(tmp_path / "slices", patients, cases)
    for scale in (0.1, 0.5, 1.0):
        for holdout in (True, False):
            for unit in ("patient", "slice"):
                name = f"scale-{scale:g}{'-slices' if unit == 'slice' else ''}{'' if holdout else '-noval'}.json"
                make_budget(split, 42, scale, patients, root / "seed42" / name, holdout=holdout, unit=unit,
                            case_ids=cases)
    report = verify(tmp_path / "splits", tmp_path / "slices")
    assert report.problems == [] and report.manifests == 13 and report.counted == 13

    budget = root / "seed42" / "scale-0.5-slices.json"
    rewrite(budget, lambda m: {**m, "counts": {**m["counts"], "train_cases": m["counts"]["train_cases"] + 1}})
    problems = verify(tmp_path / "splits", tmp_path / "slices").problems
    assert any(p.startswith(f"{budget}: records train_cases") for p in problems), problems

    test_case = str(cases[patients == split.payload["test_patients"][0]][0])
    noval = root / "seed42" / "scale-0.1-slices-noval.json"
    rewrite(noval, lambda m: {**m, "train_cases": m["train_cases"] + [test_case]})
    problems = verify(tmp_path / "splits", tmp_path / "slices").problems
    assert any(f"patient {split.payload['test_patients'][0]} is not in the split's pool" in p for p in problems)
    assert any(f"{noval}: not nested in" in p for p in problems)
    assert any(f"{noval}: train_patients are not the patients of train_cases" in p for p in problems)

    rewrite(root / "seed42" / "scale-1-noval.json", lambda m: {**m, "val_patients": ["P000"]})
    problems = verify(tmp_path / "splits", tmp_path / "slices").problems
    assert any("scale-1-noval.json: not a valid manifest" in p and "without hold-out" in p for p in problems)
