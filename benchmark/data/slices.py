"""Task data -> preprocessed slices, cached once per dataset x preprocessing.

Decoding DICOM and windowing on every epoch is what made the study's evaluation slow;
here it happens once, into a folder of ``.npy`` arrays that later runs memory-map: an
epoch reads no DICOM, and a 50 GB dataset's images are paged in as they are used.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from benchmark.core.errors import DataError
from benchmark.core.hashing import canonical_hash
from benchmark.core.locks import exclusive
from benchmark.core.specs import Preprocessing
from benchmark.data.task import Task
from benchmark.data.transforms import mask_transform, slice_transform


@dataclass(frozen=True)
class SliceSet:
    images: np.ndarray  # float16 (N, C, H, W) in [0, 1]
    labels: np.ndarray  # int64 (N,), (N, L) for multilabel, uint8 (N, H, W) masks for segmentation
    patient_ids: np.ndarray  # str (N,)
    case_ids: np.ndarray  # str (N,)
    key: str
    official: np.ndarray = field(default=None)  # str (N,): the dataset's own split per case, "" where none

    def __post_init__(self):
        if self.official is None:
            object.__setattr__(self, "official", np.full(len(self.case_ids), "", dtype="<U5"))

    def __len__(self) -> int:
        return len(self.case_ids)


def slice_cache_key(task: Task, data_fingerprint: str, prep: Preprocessing) -> str:
    spec = task.spec
    return canonical_hash([spec.name, spec.version, data_fingerprint, prep.model_dump(mode="json")])[:20]


ARRAYS = ("images", "labels", "patient_ids", "case_ids", "official")
OFFICIAL_SPLITS = ("train", "val", "test")


def load_slices(task: Task, root: Path, prep: Preprocessing, cache_dir: Path, data_fingerprint: str) -> SliceSet:
    key = slice_cache_key(task, data_fingerprint, prep)
    folder = cache_dir / f"{task.spec.name}@{task.spec.version}" / key
    with exclusive(folder, f"reading {task.spec.name} into the slice cache"):
        if not (folder / "meta.json").is_file():
            arrays = _build(task, root, prep)
            _write_cache(folder, arrays, {"task": task.spec.name, "task_version": task.spec.version,
                                          "data_fingerprint": data_fingerprint,
                                          "preprocessing": prep.model_dump(mode="json"), "cases": len(arrays["case_ids"])})
    return read_cache(folder)


def read_cache(folder: Path) -> SliceSet:
    """Images memory-mapped read-only; the small arrays in memory."""
    try:
        arrays = {name: np.load(folder / f"{name}.npy", mmap_mode="r" if name == "images" else None,
                                allow_pickle=False) for name in ARRAYS}
    except (OSError, ValueError) as exc:
        raise DataError(f"slice cache is unreadable ({exc}); delete the folder to rebuild it", folder) from None
    return SliceSet(arrays["images"], arrays["labels"], arrays["patient_ids"], arrays["case_ids"], folder.name,
                    arrays["official"])


def _write_cache(folder: Path, arrays: dict[str, np.ndarray], meta: dict) -> None:
    """All arrays into a temporary sibling, then one rename: a cache folder is whole or absent."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{folder.name}."))
    try:
        for name in ARRAYS:
            np.save(tmp / f"{name}.npy", arrays[name], allow_pickle=False)
        (tmp / "meta.json").write_text(json.dumps(meta, sort_keys=True, indent=2) + "\n")
        os.replace(tmp, folder)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _build(task: Task, root: Path, prep: Preprocessing) -> dict[str, np.ndarray]:
    transform = slice_transform(prep)
    label_transform = mask_transform(prep) if task.spec.kind == "segmentation" else lambda label, _: np.asarray(label)
    images, labels, patients, case_ids, official = [], [], [], [], []
    for case in tqdm(task.cases(root), desc=f"reading {task.spec.name}", unit="slice", leave=False):
        spacing = case.meta.get("spacing")
        if prep.spacing_mm is not None and spacing is None:
            raise DataError(f"case {case.case_id} has no pixel spacing, which the task's preprocessing "
                            f"(spacing_mm={prep.spacing_mm}) needs", root)
        images.append(transform(case.image, spacing).astype(np.float16))
        labels.append(label_transform(case.label, spacing))
        patients.append(case.patient_id)
        case_ids.append(case.case_id)
        official.append(_official_split(case, root))
    if not images:
        raise DataError(f"no cases found for task {task.spec.name}", root)
    if len(set(case_ids)) != len(case_ids):
        raise DataError(f"task {task.spec.name} yields duplicate case ids", root)
    return {
        "images": np.stack(images),
        "labels": np.stack(labels).astype(np.uint8 if task.spec.kind == "segmentation" else np.int64),
        "patient_ids": np.asarray(patients, dtype=str),
        "case_ids": np.asarray(case_ids, dtype=str),
        "official": np.asarray(official, dtype="<U5"),
    }


def _official_split(case, root: Path) -> str:
    split = case.meta.get("split", "")
    if split not in ("", *OFFICIAL_SPLITS):
        raise DataError(f"case {case.case_id} has official split {split!r}, expected one of {OFFICIAL_SPLITS}", root)
    return split
