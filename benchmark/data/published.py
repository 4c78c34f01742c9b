"""Published split manifest sets: one task's test patients and seeded budgets, named by membership.

A split derived from a lab's copy is reproducible only where the copy is the same; a published set
fixes who is in which set for every lab, and is identified by its membership hash
(``benchmark.data.membership``): task, version and patient ids, nothing about whose copy it was.

Two sources, one format (a JSON object, gzip-compressed where shipped):

* shipped in ``benchmark/data/published/<task>@<version>.json.gz``, for datasets whose patient
  ids are fixed by their public release and known without the data (LiTS volumes, MSD Task03
  liver cases, KiTS19 cases, BraTS 2020 subjects, MedMNIST's official split by index); they are
  made by ``scripts/make_published_splits.py`` with ``make_split``/``make_budget``, so anyone can
  regenerate them byte for byte;
* exported by a lab from its copy (``ctbench splits export``) and imported by another
  (``ctbench splits import``) into ``<workdir>/splits/published/<task>@<version>.json``.

Departure from a derived split: a shipped set cannot stratify by labels it has never seen, so its
pool is one stratum "all" and its budgets are unstratified draws (a lab-exported set keeps its
strata). Budgets are patient-unit only: slice-unit budgets name case ids, which are the lab's
file names.
"""
from __future__ import annotations

import gzip
import json
import logging
from pathlib import Path
from typing import Literal, Optional

import numpy as np
from pydantic import BaseModel, ConfigDict, ValidationError, model_validator

from benchmark.core.atomic import canonical_json, write_json
from benchmark.core.errors import DataError
from benchmark.data.membership import budget_membership, split_membership
from benchmark.data.splits import (
    MANIFEST_VERSION,
    SPLIT_SEED,
    Manifest,
    SplitCounts,
    SplitManifest,
    official_test,
    payload_of,
    write_once,
)

PUBLISHED_FORMAT = 1
SHIPPED_DIR = Path(__file__).with_name("published")
log = logging.getLogger(__name__)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class Source(_Strict):
    kind: Literal["shipped", "lab"]
    origin: str  # free text: the release it was derived from, or the lab and date


class PublishedSplit(_Strict):
    test_patients: list[str]
    pool_strata: dict[str, list[str]]


class PublishedBudget(_Strict):
    seed: int
    scale: float
    unit: Literal["patient"]
    holdout: bool
    train_patients: list[str]
    val_patients: list[str]
    budget_membership: str


class PublishedSet(_Strict):
    """A file's content; :func:`load_published` also proves its recorded hashes."""

    format_version: Literal[1]
    task: str
    task_version: str
    source: Source
    split: PublishedSplit
    split_membership: str
    budgets: list[PublishedBudget]

    @model_validator(mode="after")
    def _disjoint(self) -> "PublishedSet":
        pool = [p for members in self.split.pool_strata.values() for p in members]
        both = sorted(set(pool) & set(self.split.test_patients))
        if both or len(set(pool)) != len(pool) or len(set(self.split.test_patients)) != len(self.split.test_patients):
            raise ValueError(f"a patient is listed twice ({(both or ['within one set'])[0]})")
        keys = [budget_key(b.seed, b.scale, b.unit, b.holdout) for b in self.budgets]
        if len(set(keys)) != len(keys):
            raise ValueError("two budgets share a seed, scale, unit and hold-out")
        problem = next(filter(None, (_budget_problem(b, set(pool)) for b in self.budgets)), None)
        if problem:
            raise ValueError(problem)
        return self

    def split_payload(self) -> dict:
        """As ``split_membership`` reads a ``split.json``."""
        return {"task": self.task, "task_version": self.task_version, **self.split.model_dump()}

    def patients(self) -> set[str]:
        return set(self.split.test_patients) | {p for m in self.split.pool_strata.values() for p in m}

    def budget(self, seed: int, scale: float, unit: str, holdout: bool) -> Optional[PublishedBudget]:
        return next((b for b in self.budgets if budget_key(b.seed, b.scale, b.unit, b.holdout)
                     == budget_key(seed, scale, unit, holdout)), None)


def _budget_problem(budget: PublishedBudget, pool: set[str]) -> Optional[str]:
    """What makes a budget impossible: a patient outside the pool, in both sets, or validation without hold-out."""
    name = f"budget seed {budget.seed} scale {budget.scale:g}"
    train, val = set(budget.train_patients), set(budget.val_patients)
    outside, both = sorted((train | val) - pool), sorted(train & val)
    if outside:
        return f"{name}: patient {outside[0]} is not in the pool"
    if both:
        return f"{name}: patient {both[0]} is in training and validation"
    if not budget.holdout and val:
        return f"{name} has no hold-out but val_patients"
    return None


def budget_key(seed: int, scale: float, unit: str, holdout: bool) -> tuple:
    return int(seed), round(float(scale), 12), unit, bool(holdout)


def _budget_payload(task: str, version: str, budget: PublishedBudget) -> dict:
    return {"task": task, "task_version": version, **budget.model_dump(exclude={"budget_membership"})}


def load_published(path: Path) -> PublishedSet:
    """Valid JSON (gzip where the name says so), the format exactly, and every recorded hash recomputed:
    a file edited by hand (a patient moved, its hash left) is refused, naming the file."""
    try:
        raw = gzip.decompress(path.read_bytes()) if path.name.endswith(".gz") else path.read_bytes()
        payload = json.loads(raw)
    except (OSError, ValueError, EOFError) as exc:
        raise DataError(f"not a readable published split set ({type(exc).__name__}: {exc})", path) from None
    try:
        published = PublishedSet.model_validate(payload)
    except ValidationError as exc:
        error = exc.errors()[0]
        where = ".".join(str(part) for part in error["loc"]) or "the set"
        raise DataError(f"not a valid published split set ({where}: {error['msg']})".replace("\n", " "), path) from None
    if split_membership(published.split_payload()) != published.split_membership:
        raise DataError("split_membership differs from the hash of its patients: the set was edited", path)
    for budget in published.budgets:
        if budget_membership(_budget_payload(published.task, published.task_version, budget),
                             published.split_payload()) != budget.budget_membership:
            raise DataError(f"budget seed {budget.seed} scale {budget.scale:g}: budget_membership differs from the "
                            "hash of its patients: the set was edited", path)
    return published


def imported_path(workdir_root: Path, task: str, version: str) -> Path:
    return Path(workdir_root) / "splits" / "published" / f"{task}@{version}.json"


def shipped_path(task: str, version: str) -> Path:
    return SHIPPED_DIR / f"{task}@{version}.json.gz"


def find_published(task: str, version: str, workdir_root: Optional[Path] = None) -> Optional[PublishedSet]:
    """The workdir's imported set, else the shipped one, else None. Import refuses a set that
    differs from a shipped one, so where both exist they agree."""
    for path in ([imported_path(workdir_root, task, version)] if workdir_root else []) + [shipped_path(task, version)]:
        if path.is_file():
            return load_published(path)
    return None


def published_memberships(workdir_root: Path | None = None) -> dict[tuple[str, str], str]:
    """(task, task_version) -> split membership of every published set: shipped, and imported into
    ``workdir_root``. What the leaderboard compares a result's ``splits.split_membership`` with."""
    paths = sorted(SHIPPED_DIR.glob("*@*.json.gz"))
    if workdir_root is not None:
        paths += sorted((Path(workdir_root) / "splits" / "published").glob("*@*.json"))
    found = {}
    for path in paths:
        published = load_published(path)
        found[(published.task, published.task_version)] = published.split_membership
    return found


def publishable_set(split: Manifest, budgets: list[Manifest], source: Source) -> dict:
    """The published form of a split and its patient-unit budgets (slice budgets name the lab's files)."""
    payload = split.payload
    entries = []
    for budget in sorted(budgets, key=lambda b: budget_key(b.payload["seed"], b.payload["scale"],
                                                           b.payload.get("unit", "patient"),
                                                           b.payload.get("holdout", True))):
        b = budget.payload
        if b.get("unit", "patient") != "patient":
            continue
        entries.append({"seed": b["seed"], "scale": float(b["scale"]), "unit": "patient",
                        "holdout": b.get("holdout", True), "train_patients": sorted(b["train_patients"]),
                        "val_patients": sorted(b["val_patients"]),
                        "budget_membership": budget_membership(b, payload)})
    return PublishedSet.model_validate({
        "format_version": PUBLISHED_FORMAT, "task": payload["task"], "task_version": payload["task_version"],
        "source": source.model_dump(), "split_membership": split_membership(payload), "budgets": entries,
        "split": {"test_patients": sorted(payload["test_patients"]),
                  "pool_strata": {k: sorted(v) for k, v in payload["pool_strata"].items()}},
    }).model_dump(mode="json")


def write_published(path: Path, payload: dict) -> None:
    """JSON for a lab's file; gzip (no timestamp, so the bytes are reproducible) for a shipped one."""
    if path.name.endswith(".gz"):
        path.write_bytes(gzip.compress(canonical_json(payload).encode(), compresslevel=9, mtime=0))
    else:
        write_json(path, payload)


def coverage_problem(published: PublishedSet, patient_ids: np.ndarray) -> tuple[str, str]:
    """("", "") where the data holds exactly the published patients; else which way they differ
    ("foreign" or "missing") and a one-line account with counts and an example id."""
    data, listed = set(patient_ids.tolist()), published.patients()
    foreign, missing = sorted(data - listed), sorted(listed - data)
    if foreign:
        return "foreign", (f"the data holds {len(foreign)} patient(s) the published split of {published.task} does "
                           f"not list (e.g. {foreign[0]})")
    if missing:
        return "missing", (f"the data lacks {len(missing)} of the {len(listed)} patients of the published split of "
                           f"{published.task} (e.g. {missing[0]})")
    return "", ""


def moved_patient(recorded: dict, published: PublishedSet) -> str:
    """One line naming a patient whose set differs between a manifest and the published split."""
    def where(split: dict) -> dict[str, str]:
        sets = {p: "test" for p in split["test_patients"]}
        sets.update({p: f"pool/{name}" for name, members in split["pool_strata"].items() for p in members})
        return sets

    mine, theirs = where(recorded), where(published.split_payload())
    for patient in sorted(set(mine) | set(theirs)):
        if mine.get(patient) != theirs.get(patient):
            return (f"patient {patient} moved: {mine.get(patient, 'absent')} here, "
                    f"{theirs.get(patient, 'absent')} in the published split")
    return "the pool's strata differ from the published split's"


def adopt_split(published: PublishedSet, fingerprint: str, patient_ids: np.ndarray, official: Optional[np.ndarray],
                path: Path) -> Manifest:
    """``split.json`` with the published membership and this copy's fingerprint and case counts. An existing
    manifest there (derived before the set was shipped or imported) with other members is refused."""
    if path.is_file():
        recorded = json.loads(path.read_text(encoding="utf-8"))
        if split_membership(recorded) != published.split_membership:
            raise DataError(f"derived before the published split of {published.task} was adopted, and differs "
                            f"from it ({moved_patient(recorded, published)}); move its folder away to adopt the "
                            "published split", path)
    test, pool = published.split.test_patients, published.split.pool_strata
    officially = official_test(published.task, patient_ids, official)
    cases = {p: int(n) for p, n in zip(*np.unique(patient_ids, return_counts=True))}
    pool_patients = [p for members in pool.values() for p in members]
    manifest = SplitManifest(
        manifest_version=MANIFEST_VERSION, task=published.task, task_version=published.task_version,
        data_fingerprint=fingerprint, split_seed=SPLIT_SEED, stratified=len(pool) > 1, test_patients=list(test),
        pool_strata={k: list(v) for k, v in pool.items()},
        counts=SplitCounts(test_patients=len(test), pool_patients=len(pool_patients),
                           test_cases=sum(cases[p] for p in test), pool_cases=sum(cases[p] for p in pool_patients)),
        official_split=True if officially is not None and sorted(officially) == sorted(test) else None,
        published=published.split_membership,
    )
    return write_once(path, payload_of(manifest))


_warned: set[tuple[str, str]] = set()


def warn_custom(task: str, why: str) -> None:
    """Once per task and process: a subset of a published dataset gets a derived split, marked custom
    by its membership hash (the leaderboard ranks it apart), not a silent stand-in for the published one."""
    if (task, why) not in _warned:
        _warned.add((task, why))
        log.warning("%s: split derived from this copy instead (a custom split; its results rank apart from the "
                    "published split's)", why)


def moved_budget_patient(budget: dict, entry: PublishedBudget) -> str:
    """One line naming a patient whose place in a budget (train, val or out) differs from the published budget's."""
    def where(train: list[str], val: list[str]) -> dict[str, str]:
        return {**{p: "train" for p in train}, **{p: "val" for p in val}}

    mine, theirs = where(budget["train_patients"], budget["val_patients"]), where(entry.train_patients,
                                                                                   entry.val_patients)
    for patient in sorted(set(mine) | set(theirs)):
        if mine.get(patient) != theirs.get(patient):
            return (f"patient {patient} moved: {mine.get(patient, 'not drawn')} here, "
                    f"{theirs.get(patient, 'not drawn')} in the published budget")
    return "differs from the published budget"
