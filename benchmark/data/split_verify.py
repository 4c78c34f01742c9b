"""``ctbench splits verify``: prove that every split manifest on disk holds.

No patient is in two sets, no budget reaches outside its split's pool, every recorded count is
what the lists (and, where the slice cache of the same data exists, the cases) give, and within
one seed the budgets of one unit and hold-out are nested. Patient budgets nest by patient, slice
budgets by case id; in a slice budget a patient may have slices in training and in validation (the
study's design, recorded as ``counts.shared_patients``), but never a case.

Where the task has a published set (shipped, or imported into the workdir), a split that adopted it
(or holds exactly its patients) and its budgets must have the published membership: an edit that
moves one patient, even with its ``.sha256`` rewritten to match, is named ("patient X moved"). A
split of a subset of the patients is a custom split, counted, not a problem.
"""
from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np
from pydantic import ValidationError

from benchmark.core.errors import DataError
from benchmark.core.hashing import file_sha256
from benchmark.data.membership import budget_membership, split_membership
from benchmark.data.published import PublishedSet, find_published, moved_budget_patient, moved_patient
from benchmark.data.splits import BudgetManifest, Manifest, SplitManifest


@dataclass
class VerifyReport:
    manifests: int = 0
    counted: int = 0  # manifests whose case counts were re-derived from a slice cache
    published: int = 0  # splits checked against a published set's membership
    custom: int = 0  # splits of a task with a published set that hold only some of its patients
    problems: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class _Cases:
    """A slice cache's cases: how many per patient, and each case's patient."""

    per_patient: Counter
    patient_of: dict[str, str]


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
        cases = _cases(slices_dir, split.payload)
        report.counted += cases is not None
        report.problems += _split_problems(split, cases)
        paths = sorted(split_path.parent.glob("seed*/scale-*.json"))
        budgets = [_load(path, report, BudgetManifest) for path in paths]
        for budget in filter(None, budgets):
            report.counted += cases is not None
            report.problems += _budget_problems(budget, split, cases)
        report.problems += _nesting_problems([b for b in budgets if b is not None])
        report.problems += _published_problems(split, [b for b in budgets if b is not None], report,
                                               _published_for(split.payload, Path(splits_dir).parent, report))
    return report


def _published_for(split: dict, workdir_root: Path, report: VerifyReport) -> Optional[PublishedSet]:
    """The task's published set; an unreadable or edited one is a problem of its own."""
    try:
        return find_published(str(split.get("task")), str(split.get("task_version")), workdir_root)
    except DataError as exc:
        report.problems.append(str(exc))
        return None


def _published_problems(split: Manifest, budgets: list[Manifest], report: VerifyReport,
                        published: Optional[PublishedSet]) -> list[str]:
    """A split that adopted the published set, or holds exactly its patients, has its membership, and so
    does each of its budgets the set lists; a split of fewer patients is custom (counted, ranked apart)."""
    payload = split.payload
    if published is None:
        return []
    patients = set(payload["test_patients"]) | {p for m in payload["pool_strata"].values() for p in m}
    if "published" not in payload and patients != published.patients():
        report.custom += 1
        return []
    report.published += 1
    if split_membership(payload) != published.split_membership:
        return [f"{split.path}: {moved_patient(payload, published)} (membership "
                f"{split_membership(payload)[:12]}, published {published.split_membership[:12]})"]
    problems = []
    for budget in budgets:
        b = budget.payload
        entry = published.budget(b["seed"], b["scale"], b.get("unit", "patient"), b.get("holdout", True))
        if entry is not None and budget_membership(b, payload) != entry.budget_membership:
            problems.append(f"{budget.path}: {moved_budget_patient(b, entry)}")
    return problems


def _load(path: Path, report: VerifyReport,
          model: type[SplitManifest] | type[BudgetManifest]) -> Optional[Manifest]:
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


def _cases(slices_dir: Path, split: dict) -> Optional[_Cases]:
    for meta_path in sorted(Path(slices_dir).glob(f"{split['task']}@{split['task_version']}/*/meta.json")):
        meta = json.loads(meta_path.read_text())
        # a cache moved from its legacy (mtime) key still serves the manifests written under that key
        if split["data_fingerprint"] in (meta.get("data_fingerprint"), meta.get("legacy_data_fingerprint")):
            patients = np.load(meta_path.parent / "patient_ids.npy").tolist()
            case_ids = np.load(meta_path.parent / "case_ids.npy").tolist()
            return _Cases(Counter(patients), dict(zip(case_ids, patients)))
    return None


def _split_problems(split: Manifest, cases: Optional[_Cases]) -> list[str]:
    test, counts = set(split.payload["test_patients"]), split.payload["counts"]
    pool = [p for members in split.payload["pool_strata"].values() for p in members]
    problems = [f"{split.path}: patient {p} is both in the test set and in the pool" for p in sorted(test & set(pool))]
    if len(pool) != len(set(pool)):
        problems.append(f"{split.path}: a pool patient is in two strata")
    expected = {"test_patients": len(test), "pool_patients": len(set(pool))}
    if cases is not None:
        per_patient = cases.per_patient
        expected.update(test_cases=sum(per_patient[p] for p in test), pool_cases=sum(per_patient[p] for p in pool))
        problems += [f"{split.path}: patient {p} is not in the dataset"
                     for p in sorted((test | set(pool)) - set(per_patient))]
    return problems + _count_problems(split.path, counts, expected)


def _budget_problems(budget: Manifest, split: Manifest, cases: Optional[_Cases]) -> list[str]:
    payload, path = budget.payload, budget.path
    train, val = set(payload["train_patients"]), set(payload["val_patients"])
    pool = {p for members in split.payload["pool_strata"].values() for p in members}
    problems = []
    if payload["split_sha256"] != split.sha256:
        problems.append(f"{path}: made from another split.json (sha256 {payload['split_sha256'][:12]})")
    if payload.get("unit", "patient") == "patient":
        problems += [f"{path}: patient {p} is both in training and validation" for p in sorted(train & val)]
        problems += [f"{path}: patient {p} is not in the split's pool" for p in sorted((train | val) - pool)]
        expected = {"train_patients": len(train), "val_patients": len(val)}
        if cases is not None:
            per_patient = cases.per_patient
            expected.update(train_cases=sum(per_patient[p] for p in train), val_cases=sum(per_patient[p] for p in val))
        return problems + _count_problems(path, payload["counts"], expected)
    train_cases, val_cases = payload["train_cases"], payload["val_cases"]
    problems += [f"{path}: case {c} is both in training and validation" for c in sorted(set(train_cases) & set(val_cases))]
    problems += [f"{path}: {name} lists a case twice" for name, listed in (("train_cases", train_cases),
                                                                           ("val_cases", val_cases))
                 if len(set(listed)) != len(listed)]
    patients = train | val
    if cases is not None:
        problems += [f"{path}: case {c} is not in the dataset"
                     for c in sorted(set(train_cases + val_cases) - set(cases.patient_of))]
        for name, listed, recorded in (("train", train_cases, train), ("val", val_cases, val)):
            owners = {cases.patient_of[c] for c in listed if c in cases.patient_of}
            patients |= owners
            if owners != recorded:
                problems.append(f"{path}: {name}_patients are not the patients of {name}_cases")
    problems += [f"{path}: patient {p} is not in the split's pool" for p in sorted(patients - pool)]
    expected = {"train_patients": len(train), "val_patients": len(val), "train_cases": len(train_cases),
                "val_cases": len(val_cases), "shared_patients": len(train & val)}
    return problems + _count_problems(path, payload["counts"], expected)


def _count_problems(path: Path, recorded: dict, expected: dict) -> list[str]:
    return [f"{path}: records {name} = {recorded.get(name)}, the lists give {value}"
            for name, value in expected.items() if recorded.get(name) != value]


def _nesting_problems(budgets: list[Manifest]) -> list[str]:
    """Within one seed, unit and hold-out, every smaller budget lies inside every larger one."""
    problems = []
    for key in sorted({_family(b) for b in budgets}):
        members = sorted((b.payload["scale"], b.path.name, b) for b in budgets if _family(b) == key)
        for (_, _, small), (_, _, large) in zip(members, members[1:]):
            if not _members(small) <= _members(large):
                problems.append(f"{small.path}: not nested in {large.path.name}")
    return problems


def _family(budget: Manifest) -> tuple[str, str, bool]:
    return str(budget.path.parent), budget.payload.get("unit", "patient"), budget.payload.get("holdout", True)


def _members(budget: Manifest) -> set[str]:
    """What a budget draws: its patients, or with unit "slice" its case ids."""
    if budget.payload.get("unit", "patient") == "slice":
        return set(budget.payload["train_cases"]) | set(budget.payload["val_cases"])
    return set(budget.payload["train_patients"]) | set(budget.payload["val_patients"])
