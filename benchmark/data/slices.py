"""Task data -> preprocessed slices, cached once per dataset x geometry x cache stage.

Decoding DICOM on every epoch is what made the study's evaluation slow; here it happens once,
into a folder of ``.npy`` arrays that later runs memory-map: an epoch reads no DICOM, and a
50 GB dataset's images are paged in as they are used.

The stage (``cache_stage``) follows the checkpoint's input convention: raw values resized,
shared by every convention that resizes first with the same interpolation (so adding such a
checkpoint reads no DICOM again), or values mapped to [0, 1] before the resize, keyed by that
mapping.
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
from benchmark.core.specs import InputConvention, Preprocessing
from benchmark.data.intensity import effective_windows
from benchmark.data.task import Task
from benchmark.data.transforms import mask_transform, slice_transform


@dataclass(frozen=True)
class SliceSet:
    images: np.ndarray  # float16/32 (N, C, H, W): [0, 1] planes, or raw values (see ``mapped``)
    labels: np.ndarray  # int64 (N,), (N, L) for multilabel, uint8 (N, H, W) masks for segmentation
    patient_ids: np.ndarray  # str (N,)
    case_ids: np.ndarray  # str (N,)
    key: str
    official: np.ndarray = field(default=None)  # str (N,): the dataset's own split per case, "" where none
    stage: dict = field(default_factory=dict)  # ``cache_stage`` of the convention it was built for

    @property
    def mapped(self) -> bool:
        """Images hold [0, 1] planes; False: raw values, mapped when fed to a network."""
        return self.stage.get("values", "unit") == "unit"

    def __post_init__(self):
        if self.official is None:
            object.__setattr__(self, "official", np.full(len(self.case_ids), "", dtype="<U5"))

    def __len__(self) -> int:
        return len(self.case_ids)


def cache_stage(convention: InputConvention, domain: str, task_windows: list | tuple = ()) -> dict:
    """What of a convention a cache entry depends on: only the interpolation when it resizes raw
    values first; the effective mapping (never mean/std) when it maps first, so two conventions
    that map alike (a checkpoint's HU windows that are the task's own) share one entry."""
    if convention.resize_first:
        return {"values": "raw", "interpolation": convention.interpolation}
    return {"values": "unit", "interpolation": convention.interpolation, "channels": convention.channels,
            "windows": [w.model_dump() for w in effective_windows(convention, domain, task_windows)]}


def slice_cache_key(task: Task, data_fingerprint: str, prep: Preprocessing, stage: dict | None = None) -> str:
    spec = task.spec
    parts = [spec.name, spec.version, data_fingerprint, prep.model_dump(mode="json")]
    if stage is not None and stage != _task_stage(prep, spec.domain):
        parts.append(stage)  # the task's own mapping keeps the key it had before conventions existed
    return canonical_hash(parts)[:20]


def _task_stage(prep: Preprocessing, domain: str) -> dict:
    return cache_stage(InputConvention(channels=prep.channels), domain, prep.windows)


ARRAYS = ("images", "labels", "patient_ids", "case_ids", "official")
OFFICIAL_SPLITS = ("train", "val", "test")


def load_slices(task: Task, root: Path, prep: Preprocessing, cache_dir: Path, data_fingerprint: str,
                convention: InputConvention | None = None) -> SliceSet:
    """The task's slices as ``convention`` (default: the task's own mapping) needs them cached."""
    convention = convention or InputConvention(channels=prep.channels)
    stage = cache_stage(convention, task.spec.domain, prep.windows)
    key = slice_cache_key(task, data_fingerprint, prep, stage)
    folder = cache_dir / f"{task.spec.name}@{task.spec.version}" / key
    with exclusive(folder, f"reading {task.spec.name} into the slice cache"):
        if not (folder / "meta.json").is_file():
            arrays = _build(task, root, prep, convention)
            _write_cache(folder, arrays, {"task": task.spec.name, "task_version": task.spec.version,
                                          "data_fingerprint": data_fingerprint, "stage": stage,
                                          "preprocessing": prep.model_dump(mode="json"), "cases": len(arrays["case_ids"])})
    return read_cache(folder)


def read_cache(folder: Path) -> SliceSet:
    """Images memory-mapped read-only; the small arrays in memory."""
    try:
        arrays = {name: np.load(folder / f"{name}.npy", mmap_mode="r" if name == "images" else None,
                                allow_pickle=False) for name in ARRAYS}
    except (OSError, ValueError) as exc:
        raise DataError(f"slice cache is unreadable ({exc}); delete the folder to rebuild it", folder) from None
    try:
        stage = json.loads((folder / "meta.json").read_text()).get("stage", {})
    except (OSError, ValueError) as exc:
        raise DataError(f"slice cache metadata is unreadable ({exc}); delete the folder to rebuild it", folder) from None
    return SliceSet(arrays["images"], arrays["labels"], arrays["patient_ids"], arrays["case_ids"], folder.name,
                    arrays["official"], stage)


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


def _build(task: Task, root: Path, prep: Preprocessing, convention: InputConvention) -> dict[str, np.ndarray]:
    transform = slice_transform(prep, convention, task.spec.domain)
    label_transform = mask_transform(prep) if task.spec.kind == "segmentation" else lambda label, _: np.asarray(label)
    images, labels, patients, case_ids, official = [], [], [], [], []
    for case in tqdm(task.cases(root), desc=f"reading {task.spec.name}", unit="slice", leave=False):
        spacing = case.meta.get("spacing")
        if prep.spacing_mm is not None and spacing is None:
            raise DataError(f"case {case.case_id} has no pixel spacing, which the task's preprocessing "
                            f"(spacing_mm={prep.spacing_mm}) needs", root)
        images.append(_compact(transform(case.image, spacing)))
        labels.append(label_transform(case.label, spacing))
        patients.append(case.patient_id)
        case_ids.append(case.case_id)
        official.append(_official_split(case, root))
    if not images:
        raise DataError(f"no cases found for task {task.spec.name}", root)
    if len(set(case_ids)) != len(case_ids):
        raise DataError(f"task {task.spec.name} yields duplicate case ids", root)
    channels = {image.shape[0] for image in images}
    if len(channels) > 1:
        raise DataError(f"task {task.spec.name} yields slices with {sorted(channels)} channels; a task's slices "
                        "must agree", root)
    return {
        "images": np.stack(images),  # float32 if any slice needed it
        "labels": np.stack(labels).astype(np.uint8 if task.spec.kind == "segmentation" else np.int64),
        "patient_ids": np.asarray(patients, dtype=str),
        "case_ids": np.asarray(case_ids, dtype=str),
        "official": np.asarray(official, dtype="<U5"),
    }


def _compact(images: np.ndarray) -> np.ndarray:
    """float16 where the values fit (every [0, 1] plane, raw HU); float32 beyond float16's range."""
    return images.astype(np.float16) if float(np.abs(images).max(initial=0.0)) < 60000 else images


def _official_split(case, root: Path) -> str:
    split = case.meta.get("split", "")
    if split not in ("", *OFFICIAL_SPLITS):
        raise DataError(f"case {case.case_id} has official split {split!r}, expected one of {OFFICIAL_SPLITS}", root)
    return split
