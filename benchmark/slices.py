"""Task data -> preprocessed slices, cached once per dataset x preprocessing.

Decoding DICOM and windowing on every epoch is what made the study's evaluation slow;
here it happens once and every protocol reads a float16 array.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from .atomic import read_npz, write_npz
from .errors import DataError
from .hashing import canonical_hash
from .specs import Preprocessing
from .task import Task
from .transforms import mask_transform, slice_transform


@dataclass(frozen=True)
class SliceSet:
    images: np.ndarray  # float16 (N, C, H, W) in [0, 1]
    labels: np.ndarray  # int64 (N,), (N, L) for multilabel, uint8 (N, H, W) masks for segmentation
    patient_ids: np.ndarray  # str (N,)
    case_ids: np.ndarray  # str (N,)
    key: str

    def __len__(self) -> int:
        return len(self.case_ids)


def slice_cache_key(task: Task, data_fingerprint: str, prep: Preprocessing) -> str:
    spec = task.spec
    return canonical_hash([spec.name, spec.version, data_fingerprint, prep.model_dump(mode="json")])[:20]


def load_slices(task: Task, root: Path, prep: Preprocessing, cache_dir: Path, data_fingerprint: str) -> SliceSet:
    key = slice_cache_key(task, data_fingerprint, prep)
    path = cache_dir / f"{task.spec.name}@{task.spec.version}" / f"{key}.npz"
    if not path.exists():
        write_npz(path, **_build(task, root, prep))
    arrays = read_npz(path)
    return SliceSet(arrays["images"], arrays["labels"], arrays["patient_ids"], arrays["case_ids"], key)


def _build(task: Task, root: Path, prep: Preprocessing) -> dict[str, np.ndarray]:
    transform = slice_transform(prep)
    label_transform = mask_transform(prep) if task.spec.kind == "segmentation" else np.asarray
    images, labels, patients, case_ids = [], [], [], []
    for case in tqdm(task.cases(root), desc=f"reading {task.spec.name}", unit="slice", leave=False):
        images.append(transform(case.image).astype(np.float16))
        labels.append(label_transform(case.label))
        patients.append(case.patient_id)
        case_ids.append(case.case_id)
    if not images:
        raise DataError(f"no cases found for task {task.spec.name}", root)
    if len(set(case_ids)) != len(case_ids):
        raise DataError(f"task {task.spec.name} yields duplicate case ids", root)
    return {
        "images": np.stack(images),
        "labels": np.stack(labels).astype(np.uint8 if task.spec.kind == "segmentation" else np.int64),
        "patient_ids": np.asarray(patients, dtype=str),
        "case_ids": np.asarray(case_ids, dtype=str),
    }
