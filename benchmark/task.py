"""The task plugin API: a TaskSpec plus a reader that turns an on-disk layout into cases.

A plugin subclasses :class:`Task`, sets ``spec`` and implements :meth:`Task.cases`.
Embedded tasks also implement :meth:`Task.prepare_embedded`, which writes their data
to disk in a real format so that the same reader serves them and real datasets.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Union

import numpy as np

from .errors import DataError
from .specs import TaskSpec

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

    def cases(self, root: Path) -> Iterator[Case]:
        raise NotImplementedError

    def prepare_embedded(self, data_dir: Path) -> Path:
        """Write the embedded data under ``data_dir`` (idempotent) and return the reader's root."""
        raise DataError(f"task {self.spec.name} has no embedded data; pass --data {self.spec.name}=DIR")

    def fingerprint(self, root: Path) -> str:
        """Cheap identity of a dataset folder (paths, sizes, mtimes), like make's staleness check.

        Hashing file contents would be exact but costs minutes on a 50 GB real dataset.
        """
        digest = hashlib.sha256()
        for path in sorted(p for p in root.rglob("*") if p.is_file()):
            stat = path.stat()
            digest.update(f"{path.relative_to(root).as_posix()}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
        return digest.hexdigest()


def resolve_data_root(task: Task, data_roots: dict[str, Path], data_dir: Path) -> Path:
    """A ``--data TASK=DIR`` root wins; otherwise embedded tasks make their own data."""
    if task.spec.name in data_roots:  # checked to be a folder when the run was planned
        return Path(data_roots[task.spec.name]).expanduser()
    if task.spec.embedded:
        return task.prepare_embedded(data_dir)
    raise DataError(f"task {task.spec.name} needs its data: pass --data {task.spec.name}=DIR")

