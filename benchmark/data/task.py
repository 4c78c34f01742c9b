"""The task plugin API: a TaskSpec plus a reader that turns an on-disk layout into cases.

A plugin subclasses :class:`Task`, sets ``spec``, and either implements :meth:`Task.units`
(the files or file groups a dataset is made of) and :meth:`Task.read` (one unit's cases),
or, for the simplest layouts, :meth:`Task.cases` directly. Units are what make
``ctbench tasks validate`` useful: each is read on its own, so every broken file is
reported, not just the first. Embedded tasks also implement :meth:`Task.prepare_embedded`,
which writes their data to disk in a real format so that the same reader serves them and
real datasets.

A case's ``meta`` may carry ``spacing`` (mm per pixel, rows then columns) and ``split``
(``train``, ``val`` or ``test``) where the dataset has an official split, which the split
manifests then follow.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Optional, Union

import numpy as np

from benchmark.core.errors import DataError
from benchmark.core.specs import TaskSpec
from benchmark.data.fingerprint import dataset_fingerprint

Label = Union[int, np.ndarray]


@dataclass(frozen=True)
class Case:
    """One evaluation unit (a slice); grouped by ``patient_id`` when splitting."""

    case_id: str
    patient_id: str
    image: np.ndarray  # 2-D float32, Hounsfield units for CT
    label: Label
    meta: dict = field(default_factory=dict)


class Task:
    spec: TaskSpec

    def units(self, root: Path) -> list[Path]:
        """The files (or groups, named by their main file) that hold the cases, in a stable order.

        A problem with the folder as a whole (nothing found, an index file missing) raises
        DataError here; a problem with one unit is raised by :meth:`read`.
        """
        raise NotImplementedError(f"task {self.spec.name} implements neither units() nor cases()")

    def read(self, root: Path, unit: Path) -> Iterator[Case]:
        raise NotImplementedError(f"task {self.spec.name} implements units() but not read()")

    def cases(self, root: Path) -> Iterator[Case]:
        for unit in self.units(root):
            yield from self.read(root, unit)

    def bind(self, root: Path) -> "Task":
        """The task as it applies to the dataset at ``root``; generic tasks read their classes there."""
        return self

    def notes(self, root: Path) -> list[str]:
        """What a user should know about how the task reads ``root`` that is not a problem (for
        example the series it chose or skipped); ``ctbench tasks validate`` prints each line."""
        return []

    def provenance(self, root: Path) -> dict:
        """What a result should record about how ``root`` was read, beyond its fingerprint (for
        example which DICOM series stand for each patient): the result's provenance keeps it."""
        return {}

    def validate(self, root: Path) -> list[str]:
        """Every problem with a dataset folder, one line each (empty when it is usable)."""
        try:
            bound = self.bind(root)
        except DataError as exc:
            return [str(exc)]
        return bound._validate_bound(root)

    def _validate_bound(self, root: Path) -> list[str]:
        if type(self).read is Task.read:  # a plugin that only implements cases(): one unit
            groups = [lambda: self.cases(root)]
        else:
            try:
                units = self.units(root)
            except DataError as exc:
                return [str(exc)]
            groups = [lambda unit=unit: self.read(root, unit) for unit in units]
        problems, n_cases = [], 0
        for group in groups:
            try:
                for case in group():
                    n_cases += 1
                    problems += check_case(self.spec, case)
            except DataError as exc:
                problems.append(str(exc))
        if n_cases == 0 and not problems:
            problems.append(f"{root}: holds no cases for task {self.spec.name}")
        return problems

    def prepare_embedded(self, data_dir: Path) -> Path:
        """Write the embedded data under ``data_dir`` (idempotent) and return the reader's root."""
        raise DataError(f"task {self.spec.name} has no embedded data; pass --data {self.spec.name}=DIR")

    def fingerprint(self, root: Path, hash_cache: Optional[Path] = None) -> str:
        """The dataset's identity (a hex digest), which keys its slice cache and split manifests.

        By default relative paths, sizes and each file's content sha256, so a copy of the data
        (another path, new mtimes) is the same dataset; ``hash_cache`` is a folder where ctbench
        keeps each file's hash by path, size and mtime, so only changed files are read again.
        A plugin may override it (for example with a dataset's published file list and checksums).
        """
        return dataset_fingerprint(root, hash_cache)


def check_case(spec: TaskSpec, case: Case) -> list[str]:
    """What a reader cannot see from one file alone: the case against its task."""
    problems = []
    where = f"{case.case_id}"
    image = np.asarray(case.image)
    if image.ndim not in (2, 3):
        problems.append(f"{where}: image has shape {image.shape}, expected 2-D (or channels x 2-D)")
    elif not np.isfinite(image).all():
        problems.append(f"{where}: image holds NaN or Inf values")
    if spec.kind == "segmentation":
        mask = np.asarray(case.label)
        if mask.shape != image.shape[-2:]:
            problems.append(f"{where}: mask shape {mask.shape} differs from image shape {image.shape[-2:]}")
        elif mask.size and int(mask.max()) >= len(spec.class_names):
            problems.append(f"{where}: mask label {int(mask.max())} is outside the task's "
                            f"{len(spec.class_names)} classes")
    elif spec.kind == "multilabel":
        if np.shape(case.label) != (len(spec.class_names),):
            problems.append(f"{where}: {np.shape(case.label)} labels, expected {len(spec.class_names)}")
    elif not 0 <= int(case.label) < len(spec.class_names):
        problems.append(f"{where}: label {case.label} is outside the task's {len(spec.class_names)} classes")
    return problems


def resolve_data_root(task: Task, data_roots: dict[str, Path], data_dir: Path) -> Path:
    """A ``--data TASK=DIR`` root wins; otherwise embedded tasks make their own data."""
    if task.spec.name in data_roots:  # checked to be a folder when the run was planned
        return Path(data_roots[task.spec.name]).expanduser()
    if task.spec.embedded:
        return task.prepare_embedded(data_dir)
    raise DataError(f"task {task.spec.name} needs its data: pass --data {task.spec.name}=DIR")

