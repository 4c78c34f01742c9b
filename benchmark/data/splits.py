"""Leak-free split manifests: files with a sha256, not code paths.

Two kinds of manifest per task and dataset:

* ``split.json`` partitions patients into a fixed test set and a training pool
  (stratified by each patient's majority label where every class has enough patients);
* ``seed<S>/scale-<f>.json`` is a label budget: within each stratum of the pool, the
  first ceil(f * n) patients of one seeded permutation, so budgets are nested
  (1 % in 10 % in 100 %) and hold every class. The validation set used for model
  selection is carved out of that budget.

Every manifest records the case counts it implies, and every result records the
manifests' sha256, so a "10 %" run can never quietly train on everything.
"""
from __future__ import annotations

import json
import math
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np
from pydantic import BaseModel, ConfigDict, ValidationError
from sklearn.model_selection import train_test_split

from benchmark.core.atomic import atomic_open, canonical_json, write_json
from benchmark.core.errors import DataError
from benchmark.core.hashing import file_sha256

MANIFEST_VERSION = 2
TEST_FRACTION = 0.2
VAL_FRACTION = 0.2
SPLIT_SEED = 0  # the test set never moves with the run's seed
MIN_BUDGET_PATIENTS = 2  # one to fit on, one to select hyperparameters on


class _Payload(BaseModel):
    """A manifest's JSON, as written and as read back. Strict: a patient id is a string, a count an int,
    never coerced; ``extra="forbid"``: a key ctbench does not write is an edit, not data to ignore."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class SplitCounts(_Payload):
    test_patients: int
    pool_patients: int
    test_cases: int
    pool_cases: int


class SplitManifest(_Payload):
    """``split.json``: the fixed test patients and the training pool, by stratum."""

    manifest_version: int
    task: str
    task_version: str
    data_fingerprint: str
    split_seed: int
    stratified: bool
    test_patients: list[str]
    pool_strata: dict[str, list[str]]
    counts: SplitCounts
    official_split: Optional[bool] = None  # written only when True: manifests without one keep their bytes


class BudgetCounts(_Payload):
    train_patients: int
    val_patients: int
    train_cases: int
    val_cases: int


class BudgetManifest(_Payload):
    """``seed<S>/scale-<f>.json``: one label budget drawn inside a split's pool."""

    manifest_version: int
    task: str
    task_version: str
    split_sha256: str
    seed: int
    scale: float
    floored: bool
    train_patients: list[str]
    val_patients: list[str]
    counts: BudgetCounts


def _payload(model: _Payload) -> dict:
    return model.model_dump(mode="json", exclude_none=True)


@dataclass(frozen=True)
class Manifest:
    path: Path
    payload: dict
    sha256: str


def _write_once(path: Path, payload: dict) -> Manifest:
    """A manifest is immutable: an existing file must equal what we would write.

    Its sha256 is written beside it (``<name>.sha256``, sha256sum's format), so a copied or
    edited manifest can be checked without ctbench (``sha256sum -c``) and by ``splits verify``.
    """
    text = canonical_json(payload)
    if path.exists():
        if path.read_text() != text:
            raise DataError("split manifest differs from the one ctbench derives for this data; "
                            "delete it only if you mean to change the split", path)
    else:
        write_json(path, payload)
    sha = file_sha256(path)
    checksum = path.with_name(path.name + ".sha256")
    if not checksum.is_file():
        with atomic_open(checksum, "w") as handle:
            handle.write(f"{sha}  {path.name}\n")
    return Manifest(path, payload, sha)


def _majority_labels(patient_ids: np.ndarray, labels: np.ndarray) -> dict[str, Optional[int]]:
    if labels.ndim != 1:
        return {p: None for p in np.unique(patient_ids)}
    majority: dict[str, Optional[int]] = {}
    for patient in np.unique(patient_ids):
        counts = Counter(labels[patient_ids == patient].tolist())
        majority[str(patient)] = min(counts, key=lambda c: (-counts[c], c))
    return majority


def _stratify_or_none(patients: list[str], majority: dict[str, Optional[int]], n_test: int) -> Optional[list]:
    strata = [majority[p] for p in patients]
    counts = Counter(strata)
    enough = None not in counts and min(counts.values()) >= 2 and len(counts) <= min(n_test, len(patients) - n_test)
    return strata if enough and len(counts) > 1 else None


def make_split(task: str, version: str, data_fingerprint: str, patient_ids: np.ndarray,
               labels: np.ndarray, path: Path, official: Optional[np.ndarray] = None) -> Manifest:
    """``data_fingerprint`` is the sha256 of the dataset's file listing (paths, sizes, mtimes).

    Where the dataset has an official split (``official``, per case), its test patients are
    the test set and everything else is the pool; otherwise a seeded, stratified draw.
    """
    patients = sorted(set(patient_ids.tolist()))
    if len(patients) < 3:
        raise DataError(f"task {task} has {len(patients)} patient(s); a split needs at least 3")
    majority = _majority_labels(patient_ids, labels)
    official_test = _official_test(task, patient_ids, official)
    if official_test is not None:
        test, pool, stratify = official_test, [p for p in patients if p not in set(official_test)], None
    else:
        n_test = max(1, round(TEST_FRACTION * len(patients)))
        stratify = _stratify_or_none(patients, majority, n_test)
        pool, test = train_test_split(patients, test_size=n_test, random_state=SPLIT_SEED, stratify=stratify)
    case_counts = Counter(patient_ids.tolist())
    manifest = SplitManifest(
        manifest_version=MANIFEST_VERSION, task=task, task_version=version, data_fingerprint=data_fingerprint,
        split_seed=SPLIT_SEED, stratified=stratify is not None, test_patients=sorted(test),
        pool_strata=_pool_strata(sorted(pool), majority),
        counts=SplitCounts(test_patients=len(test), pool_patients=len(pool),
                           test_cases=sum(case_counts[p] for p in test), pool_cases=sum(case_counts[p] for p in pool)),
        official_split=True if official_test is not None else None,
    )
    return _write_once(path, _payload(manifest))


def _official_test(task: str, patient_ids: np.ndarray, official: Optional[np.ndarray]) -> Optional[list[str]]:
    """The official test patients, or None; a patient in two official splits is a leak and refused."""
    if official is None or not (official != "").any():
        return None
    if (official == "").any():
        raise DataError(f"task {task}: {int((official == '').sum())} case(s) have no official split while "
                        "others do")
    splits_of: dict[str, set] = {}
    for patient, split in zip(patient_ids.tolist(), official.tolist()):
        splits_of.setdefault(patient, set()).add(split)
    leaking = sorted(p for p, splits in splits_of.items() if len(splits) > 1)
    if leaking:
        raise DataError(f"task {task}: patient {leaking[0]} is in official splits {sorted(splits_of[leaking[0]])} "
                        f"({len(leaking)} such patients): the official split leaks")
    test = sorted(p for p, splits in splits_of.items() if "test" in splits)
    if not test or len(test) == len(splits_of):
        raise DataError(f"task {task}: the official split has {len(test)} test patient(s) of {len(splits_of)}")
    return test


def _pool_strata(pool: list[str], majority: dict[str, Optional[int]]) -> dict[str, list[str]]:
    """Pool patients by majority label, so every budget holds every class; one stratum
    "all" where a label has fewer than two pool patients (or labels are not per-slice classes)."""
    strata: dict[str, list[str]] = {}
    for patient in pool:
        strata.setdefault(str(majority[patient]), []).append(patient)
    if "None" in strata or len(strata) == 1 or min(len(p) for p in strata.values()) < 2:
        return {"all": pool}
    return dict(sorted(strata.items()))


def pool_patients(split: Manifest) -> list[str]:
    return sorted(p for members in split.payload["pool_strata"].values() for p in members)


def budget_size(scale: float, stratum_size: int) -> int:
    return min(stratum_size, max(MIN_BUDGET_PATIENTS, math.ceil(scale * stratum_size)))


def make_budget(split: Manifest, seed: int, scale: float, patient_ids: np.ndarray, path: Path) -> Manifest:
    """Per stratum, the first ceil(scale * n) patients of a seeded permutation: nested across
    scales. The last fifth of each stratum's share (at least one patient) is the validation set."""
    train, val, floored = [], [], False
    for index, (_, members) in enumerate(split.payload["pool_strata"].items()):
        order = [members[i] for i in np.random.default_rng([seed, index]).permutation(len(members))]
        share = order[: budget_size(scale, len(members))]
        n_val = max(1, round(VAL_FRACTION * len(share)))
        train += share[:-n_val]
        val += share[-n_val:]
        floored |= math.ceil(scale * len(members)) < MIN_BUDGET_PATIENTS
    case_counts = Counter(patient_ids.tolist())
    manifest = BudgetManifest(
        manifest_version=MANIFEST_VERSION, task=split.payload["task"], task_version=split.payload["task_version"],
        split_sha256=split.sha256, seed=seed, scale=scale, floored=floored, train_patients=train, val_patients=val,
        counts=BudgetCounts(train_patients=len(train), val_patients=len(val),
                            train_cases=sum(case_counts[p] for p in train), val_cases=sum(case_counts[p] for p in val)),
    )
    return _write_once(path, _payload(manifest))


def indices_for(patient_ids: np.ndarray, patients: list[str]) -> np.ndarray:
    return np.flatnonzero(np.isin(patient_ids, np.asarray(patients, dtype=str)))


@dataclass
class VerifyReport:
    manifests: int = 0
    counted: int = 0  # manifests whose case counts were re-derived from a slice cache
    problems: list[str] = field(default_factory=list)


def verify(splits_dir: Path, slices_dir: Path) -> VerifyReport:
    """Prove, for every split on disk, that no patient is in two sets and that the counts hold.

    Patient counts are checked against the lists; case counts against the cached slices of
    the same dataset (matched by its fingerprint) wherever that cache exists. A manifest that
    is not valid JSON or lacks a list is one problem naming it, never a traceback.
    """
    report = VerifyReport()
    for split_path in sorted(Path(splits_dir).glob("*/*/split.json")):
        split = _load(split_path, report, SplitManifest)
        if split is None:
            continue
        cases = _cases_per_patient(slices_dir, split.payload)
        report.counted += cases is not None
        report.problems += _split_problems(split, cases)
        paths = sorted(split_path.parent.glob("seed*/scale-*.json"))
        budgets = [_load(path, report, BudgetManifest) for path in paths]
        for budget in filter(None, budgets):
            report.counted += cases is not None
            report.problems += _budget_problems(budget, split, cases)
        report.problems += _nesting_problems([b for b in budgets if b is not None])
    return report


def _load(path: Path, report: VerifyReport, model: type[_Payload]) -> Optional[Manifest]:
    """The manifest, if it is one; its checksum problems and shape problems go to ``report``."""
    report.manifests += 1
    sha = file_sha256(path)
    checksum = path.with_name(path.name + ".sha256")
    if not checksum.is_file():
        report.problems.append(f"{path}: has no {checksum.name}, so an edit cannot be ruled out")
    elif (checksum.read_text().split() or [""])[0] != sha:
        report.problems.append(f"{path}: sha256 {sha[:12]} differs from {checksum.name}: the manifest was edited")
    try:
        payload = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        report.problems.append(f"{path}: not a readable manifest ({exc})")
        return None
    try:
        model.model_validate(payload)
    except ValidationError as exc:
        report.problems.append(f"{path}: not a valid manifest ({_shape_problem(exc)})")
        return None
    return Manifest(path, payload, sha)


def _shape_problem(exc: ValidationError) -> str:
    """The first problem pydantic found, on one line: where in the manifest, and what."""
    error = exc.errors()[0]
    where = ".".join(str(part) for part in error["loc"])
    if error["type"] == "missing":
        return f"no {where!r}"
    if error["type"] == "model_type" and not where:
        return "not a JSON object"
    if error["type"] == "extra_forbidden":
        return f"{where!r} is not a manifest field"
    return f"{where or 'the manifest'}: {error['msg']}".replace("\n", " ")


def _cases_per_patient(slices_dir: Path, split: dict) -> Optional[Counter]:
    for meta_path in sorted(Path(slices_dir).glob(f"{split['task']}@{split['task_version']}/*/meta.json")):
        if json.loads(meta_path.read_text()).get("data_fingerprint") == split["data_fingerprint"]:
            return Counter(np.load(meta_path.parent / "patient_ids.npy").tolist())
    return None


def _split_problems(split: Manifest, cases: Optional[Counter]) -> list[str]:
    test, counts = set(split.payload["test_patients"]), split.payload["counts"]
    pool = [p for members in split.payload["pool_strata"].values() for p in members]
    problems = [f"{split.path}: patient {p} is both in the test set and in the pool" for p in sorted(test & set(pool))]
    if len(pool) != len(set(pool)):
        problems.append(f"{split.path}: a pool patient is in two strata")
    expected = {"test_patients": len(test), "pool_patients": len(set(pool))}
    if cases is not None:
        expected.update(test_cases=sum(cases[p] for p in test), pool_cases=sum(cases[p] for p in pool))
        problems += [f"{split.path}: patient {p} is not in the dataset" for p in sorted((test | set(pool)) - set(cases))]
    return problems + _count_problems(split.path, counts, expected)


def _budget_problems(budget: Manifest, split: Manifest, cases: Optional[Counter]) -> list[str]:
    train, val = set(budget.payload["train_patients"]), set(budget.payload["val_patients"])
    pool = {p for members in split.payload["pool_strata"].values() for p in members}
    problems = [f"{budget.path}: patient {p} is both in training and validation" for p in sorted(train & val)]
    problems += [f"{budget.path}: patient {p} is not in the split's pool" for p in sorted((train | val) - pool)]
    if budget.payload["split_sha256"] != split.sha256:
        problems.append(f"{budget.path}: made from another split.json (sha256 {budget.payload['split_sha256'][:12]})")
    expected = {"train_patients": len(train), "val_patients": len(val)}
    if cases is not None:
        expected.update(train_cases=sum(cases[p] for p in train), val_cases=sum(cases[p] for p in val))
    return problems + _count_problems(budget.path, budget.payload["counts"], expected)


def _count_problems(path: Path, recorded: dict, expected: dict) -> list[str]:
    return [f"{path}: records {name} = {recorded.get(name)}, the lists give {value}"
            for name, value in expected.items() if recorded.get(name) != value]


def _nesting_problems(budgets: list[Manifest]) -> list[str]:
    """Within one seed, every smaller budget lies inside every larger one."""
    problems = []
    for seed_dir in sorted({b.path.parent for b in budgets}):
        members = sorted((b.payload["scale"], b.path.name, b) for b in budgets if b.path.parent == seed_dir)
        for (_, _, small), (_, _, large) in zip(members, members[1:]):
            if not _budget_patients(small) <= _budget_patients(large):
                problems.append(f"{small.path}: not nested in {large.path.name}")
    return problems


def _budget_patients(budget: Manifest) -> set[str]:
    return set(budget.payload["train_patients"]) | set(budget.payload["val_patients"])
