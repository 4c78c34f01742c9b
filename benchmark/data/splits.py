"""Leak-free split manifests: files with a sha256, not code paths.

Two kinds of manifest per task and dataset:

* ``split.json`` partitions patients into a fixed test set and a training pool
  (stratified by each patient's majority label where every class has enough patients);
* ``seed<S>/scale-<f>.json`` is a label budget: within each stratum of the pool, the
  first ceil(f * n) patients of one seeded permutation, so budgets are nested
  (1 % in 10 % in 100 %) and hold every class. The validation set used for model
  selection is carved out of that budget, unless the budget has no hold-out
  (``holdout=False``: all of it trains, for runs that keep their last epoch).

A budget's unit is the patient (ctbench's default) or, as in the study, the slice
(``unit="slice"``): then the first ceil(f * n) of a seeded permutation of the stratum's
slices, redrawn per seed, with its hold-out a fifth of those slices, so one patient can
have slices in training and in validation (``counts.shared_patients``). That is the
study's design, not a leak into the test set (test patients never enter a budget), but
it lets validation flatter a model, which is why ctbench draws patients by default.

The checks that every manifest on disk holds are in ``benchmark.data.split_verify``.

Every manifest records the case counts it implies, and every result records the
manifests' sha256, so a "10 %" run can never quietly train on everything.
"""
from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Optional

import numpy as np
from pydantic import BaseModel, ConfigDict, model_validator
from sklearn.model_selection import train_test_split

from benchmark.core.atomic import atomic_open, canonical_json, write_json
from benchmark.core.errors import DataError
from benchmark.core.hashing import file_sha256

MANIFEST_VERSION = 2
TEST_FRACTION = 0.2
VAL_FRACTION = 0.2
SPLIT_SEED = 0  # the test set never moves with the run's seed
MIN_BUDGET_PATIENTS = 2  # one to fit on, one to select hyperparameters on
MIN_BUDGET_SLICES = 3  # slice unit: two to fit on, one to select on (all three train without a hold-out)
UNITS = ("patient", "slice")
Unit = Literal["patient", "slice"]


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
    published: Optional[str] = None  # the published set's split membership, written only where one was adopted


class BudgetCounts(_Payload):
    train_patients: int
    val_patients: int
    train_cases: int
    val_cases: int
    shared_patients: Optional[int] = None  # slice unit only: patients with slices in training and validation


class BudgetManifest(_Payload):
    """``seed<S>/scale-<f>.json``: one label budget drawn inside a split's pool.

    The fields after ``counts`` are written only where they differ from their defaults, so a
    patient budget with a hold-out keeps the bytes (and sha256) it had before they existed.
    With unit "slice", ``train_cases``/``val_cases`` are the budget and ``train_patients``/
    ``val_patients`` the patients those slices belong to."""

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
    holdout: bool = True
    unit: Unit = "patient"
    train_cases: Optional[list[str]] = None
    val_cases: Optional[list[str]] = None

    @model_validator(mode="after")
    def _consistent(self) -> "BudgetManifest":
        by_slice = self.unit == "slice"
        written = (self.train_cases is not None, self.val_cases is not None, self.counts.shared_patients is not None)
        if written != (by_slice,) * 3:
            raise ValueError("train_cases, val_cases and counts.shared_patients are written for unit 'slice' "
                             "and only for it")
        if not self.holdout and (self.val_patients or self.val_cases):
            raise ValueError("a budget without hold-out has no validation set")
        return self


def payload_of(model: _Payload) -> dict:
    """Fields at their defaults are left out, so a field added with a default keeps old manifests' bytes."""
    return model.model_dump(mode="json", exclude_none=True, exclude_defaults=True)


@dataclass(frozen=True)
class Manifest:
    path: Path
    payload: dict
    sha256: str


def write_once(path: Path, payload: dict) -> Manifest:
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
    """``data_fingerprint`` identifies the dataset by its files' paths, sizes and contents
    (``benchmark.data.fingerprint``), never by where it is or when it was written.

    Where the dataset has an official split (``official``, per case), its test patients are
    the test set and everything else is the pool; otherwise a seeded, stratified draw.
    """
    patients = sorted(set(patient_ids.tolist()))
    if len(patients) < 3:
        raise DataError(f"task {task} has {len(patients)} patient(s); a split needs at least 3")
    majority = _majority_labels(patient_ids, labels)
    officially = official_test(task, patient_ids, official)
    if officially is not None:
        test, pool, stratify = officially, [p for p in patients if p not in set(officially)], None
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
        official_split=True if officially is not None else None,
    )
    return write_once(path, payload_of(manifest))


def official_test(task: str, patient_ids: np.ndarray, official: Optional[np.ndarray]) -> Optional[list[str]]:
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


def budget_size(scale: float, stratum_size: int, minimum: int = MIN_BUDGET_PATIENTS) -> int:
    return min(stratum_size, max(minimum, math.ceil(scale * stratum_size)))


def make_budget(split: Manifest, seed: int, scale: float, patient_ids: np.ndarray, path: Path, *,
                holdout: bool = True, unit: Unit = "patient", case_ids: Optional[np.ndarray] = None,
                drawn: Optional[tuple[list[str], list[str]]] = None) -> Manifest:
    """Per stratum, the first ceil(scale * n) patients (unit "slice": slices, ``case_ids`` per row
    beside ``patient_ids``) of a seeded permutation: nested across scales. With ``holdout``, the
    last fifth of each stratum's share (at least one) is the validation set; without, all trains.
    ``drawn`` (the training and validation patients of a published set) replaces the draw, so a lab
    uses the published budget even if this code would now draw another."""
    if unit not in UNITS:
        raise ValueError(f"unit must be one of {UNITS}, not {unit!r}")
    if unit == "slice" and case_ids is None:
        raise ValueError("a slice-unit budget draws case ids: pass case_ids")
    if case_ids is not None and len(case_ids) != len(patient_ids):
        raise ValueError(f"{len(case_ids)} case ids for {len(patient_ids)} patient ids")
    strata = split.payload["pool_strata"]
    if unit == "slice":
        strata = _case_strata(strata, patient_ids, case_ids)
    minimum = MIN_BUDGET_SLICES if unit == "slice" else MIN_BUDGET_PATIENTS
    train, val, floored = [], [], False
    for index, members in enumerate(strata.values()):
        stream = [seed, index] if unit == "patient" else [seed, index, 1]
        order = [members[i] for i in np.random.default_rng(stream).permutation(len(members))]
        share = order[: budget_size(scale, len(members), minimum)]
        n_train = len(share) - (max(1, round(VAL_FRACTION * len(share))) if holdout else 0)
        train += share[:n_train]
        val += share[n_train:]
        floored |= math.ceil(scale * len(members)) < minimum
    if drawn is not None and unit == "patient":
        train, val = list(drawn[0]), list(drawn[1])
    if unit == "patient":
        case_counts = Counter(patient_ids.tolist())
        members = dict(train_patients=train, val_patients=val)
        counts = BudgetCounts(train_patients=len(train), val_patients=len(val),
                              train_cases=sum(case_counts[p] for p in train), val_cases=sum(case_counts[p] for p in val))
    else:
        patient_of = dict(zip(case_ids.tolist(), patient_ids.tolist()))
        train_patients, val_patients = sorted({patient_of[c] for c in train}), sorted({patient_of[c] for c in val})
        members = dict(train_patients=train_patients, val_patients=val_patients, train_cases=train, val_cases=val)
        counts = BudgetCounts(train_patients=len(train_patients), val_patients=len(val_patients), train_cases=len(train),
                              val_cases=len(val), shared_patients=len(set(train_patients) & set(val_patients)))
    manifest = BudgetManifest(
        manifest_version=MANIFEST_VERSION, task=split.payload["task"], task_version=split.payload["task_version"],
        split_sha256=split.sha256, seed=seed, scale=scale, floored=floored, counts=counts, holdout=holdout, unit=unit,
        **members,
    )
    return write_once(path, payload_of(manifest))


def _case_strata(strata: dict[str, list[str]], patient_ids: np.ndarray, case_ids: np.ndarray) -> dict[str, list[str]]:
    """Each pool stratum's slices (sorted case ids, so a draw depends on membership, not row order)."""
    if len(np.unique(case_ids)) != len(case_ids):
        raise DataError("case ids repeat, so a slice-unit budget could not name its slices")
    stratum_of = {p: name for name, members in strata.items() for p in members}
    cases: dict[str, list[str]] = {name: [] for name in strata}
    for patient, case in zip(patient_ids.tolist(), case_ids.tolist()):
        if patient in stratum_of:
            cases[stratum_of[patient]].append(case)
    return {name: sorted(members) for name, members in cases.items()}


def indices_for(patient_ids: np.ndarray, patients: list[str]) -> np.ndarray:
    return np.flatnonzero(np.isin(patient_ids, np.asarray(patients, dtype=str)))


def budget_rows(budget: Manifest, patient_ids: np.ndarray, case_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The rows of a slice set (its ``patient_ids``, ``case_ids``) in the budget's training and
    validation sets, whichever its unit; a slice budget naming a case the set lacks is refused."""
    payload = budget.payload
    if payload.get("unit", "patient") == "patient":
        return indices_for(patient_ids, payload["train_patients"]), indices_for(patient_ids, payload["val_patients"])
    rows = []
    for name in ("train_cases", "val_cases"):
        found = indices_for(case_ids, payload[name])
        if len(found) != len(payload[name]):
            raise DataError(f"{len(payload[name]) - len(found)} of the budget's {len(payload[name])} {name} "
                            "are not in this slice set", budget.path)
        rows.append(found)
    return rows[0], rows[1]
