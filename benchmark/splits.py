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

import math
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np
from sklearn.model_selection import train_test_split

from .atomic import canonical_json, write_json
from .errors import DataError
from .hashing import file_sha256

MANIFEST_VERSION = 2
TEST_FRACTION = 0.2
VAL_FRACTION = 0.2
SPLIT_SEED = 0  # the test set never moves with the run's seed
MIN_BUDGET_PATIENTS = 2  # one to fit on, one to select hyperparameters on


@dataclass(frozen=True)
class Manifest:
    path: Path
    payload: dict
    sha256: str


def _write_once(path: Path, payload: dict) -> Manifest:
    """A manifest is immutable: an existing file must equal what we would write."""
    text = canonical_json(payload)
    if path.exists():
        if path.read_text() != text:
            raise DataError("split manifest differs from the one ctbench derives for this data; "
                            "delete it only if you mean to change the split", path)
    else:
        write_json(path, payload)
    return Manifest(path, payload, file_sha256(path))


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
               labels: np.ndarray, path: Path) -> Manifest:
    patients = sorted(set(patient_ids.tolist()))
    if len(patients) < 3:
        raise DataError(f"task {task} has {len(patients)} patient(s); a split needs at least 3")
    majority = _majority_labels(patient_ids, labels)
    n_test = max(1, round(TEST_FRACTION * len(patients)))
    stratify = _stratify_or_none(patients, majority, n_test)
    pool, test = train_test_split(patients, test_size=n_test, random_state=SPLIT_SEED, stratify=stratify)
    case_counts = Counter(patient_ids.tolist())
    payload = {
        "manifest_version": MANIFEST_VERSION,
        "task": task,
        "task_version": version,
        "data_fingerprint": data_fingerprint,
        "split_seed": SPLIT_SEED,
        "stratified": stratify is not None,
        "test_patients": sorted(test),
        "pool_strata": _pool_strata(sorted(pool), majority),
        "counts": {
            "test_patients": len(test),
            "pool_patients": len(pool),
            "test_cases": sum(case_counts[p] for p in test),
            "pool_cases": sum(case_counts[p] for p in pool),
        },
    }
    return _write_once(path, payload)


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
    payload = {
        "manifest_version": MANIFEST_VERSION,
        "task": split.payload["task"],
        "task_version": split.payload["task_version"],
        "split_sha256": split.sha256,
        "seed": seed,
        "scale": scale,
        "floored": floored,
        "train_patients": train,
        "val_patients": val,
        "counts": {
            "train_patients": len(train),
            "val_patients": len(val),
            "train_cases": sum(case_counts[p] for p in train),
            "val_cases": sum(case_counts[p] for p in val),
        },
    }
    return _write_once(path, payload)


def indices_for(patient_ids: np.ndarray, patients: list[str]) -> np.ndarray:
    return np.flatnonzero(np.isin(patient_ids, np.asarray(patients, dtype=str)))
