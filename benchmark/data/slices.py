"""Task data -> preprocessed slices, cached once per dataset x geometry x cache stage.

Decoding DICOM on every epoch is what made the study's evaluation slow; here it happens once,
into a folder of ``.npy`` arrays that later runs memory-map: an epoch reads no DICOM, and a
50 GB dataset's images are paged in as they are used.

The stage (``cache_stage``) follows the checkpoint's input convention: raw values resized,
shared by every convention that resizes first with the same interpolation (so adding such a
checkpoint reads no DICOM again), or values mapped to [0, 1] before the resize, keyed by that
mapping.

The cache is compact and built by streaming, so that neither its size on disk nor the memory
of building it is a multiple of what a network sees:

- each slice is appended to its ``.npy`` file as it is read (``StreamedArray``), whose header
  is written last, once the number of slices is known; building holds one slice at a time;
- raw values keep the source's own type: uint8 for 8-bit images, int16 for CT in HU, float16
  otherwise (float32 beyond float16's range), chosen from the first slice and widened when a
  later one does not fit (``value_dtype``);
- identical channels are stored once: raw values keep the source's channels (grey: one), and
  [0, 1] planes (float16) are the distinct ones, one per window, which ``InputPipeline.unit``
  copies into the convention's channels.

Layout of a cache folder (``CACHE_VERSION`` 2): ``images.npy`` (N, P, H, W) in the dtype above,
``labels.npy`` (int64 (N,) or (N, L); uint8 (N, H, W) masks for segmentation, memory-mapped
too), ``patient_ids.npy``, ``case_ids.npy``, ``official.npy`` and ``meta.json``.
"""
from __future__ import annotations

import json
import logging
import os
import struct
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from benchmark.core.atomic import publish_folder, temp_folder, write_json
from benchmark.core.errors import DataError
from benchmark.core.hashing import canonical_hash
from benchmark.core.locks import exclusive
from benchmark.core.specs import InputConvention, Preprocessing
from benchmark.data.fingerprint import legacy_fingerprint
from benchmark.data.intensity import effective_windows
from benchmark.data.task import Task
from benchmark.data.transforms import mask_transform, slice_transform

log = logging.getLogger(__name__)

#: Part of every cache key: version 1 stored float16 with the convention's channels, so its
#: folders must not be read as version 2's compact arrays.
CACHE_VERSION = 2


@dataclass(frozen=True)
class SliceSet:
    # (N, P, H, W), memory-mapped: raw values in the source's dtype (uint8, int16, float16/32) and
    # channels, or float16 [0, 1] planes, the distinct ones (see ``mapped``); ``InputPipeline.unit``
    # turns either into the convention's float32 channels.
    images: np.ndarray
    labels: np.ndarray  # int64 (N,), (N, L) for multilabel, uint8 (N, H, W) masks (memory-mapped) for segmentation
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
    parts = [spec.name, spec.version, data_fingerprint, prep.model_dump(mode="json"), {"cache_version": CACHE_VERSION}]
    if stage is not None and stage != _task_stage(prep, spec.domain):
        parts.append(stage)  # the task's own mapping needs no stage in its key
    return canonical_hash(parts)[:20]


def _task_stage(prep: Preprocessing, domain: str) -> dict:
    return cache_stage(InputConvention(channels=prep.channels), domain, prep.windows)


ARRAYS = ("images", "labels", "patient_ids", "case_ids", "official")
OFFICIAL_SPLITS = ("train", "val", "test")
HEADER_BYTES = 128  # room reserved for a streamed .npy header; a multiple of 64, as numpy aligns them
WIDEN_CHUNK_BYTES = 16 << 20
FLOAT16_LIMIT = 60000  # float16's largest finite value is 65504


def load_slices(task: Task, root: Path, prep: Preprocessing, cache_dir: Path, data_fingerprint: str,
                convention: InputConvention | None = None) -> SliceSet:
    """The task's slices as ``convention`` (default: the task's own mapping) needs them cached."""
    convention = convention or InputConvention(channels=prep.channels)
    stage = cache_stage(convention, task.spec.domain, prep.windows)
    key = slice_cache_key(task, data_fingerprint, prep, stage)
    folder = cache_dir / f"{task.spec.name}@{task.spec.version}" / key
    with exclusive(folder, f"reading {task.spec.name} into the slice cache"):
        if not (folder / "meta.json").is_file() and not _adopt_legacy(task, root, prep, stage, data_fingerprint, folder):
            meta = {"task": task.spec.name, "task_version": task.spec.version, "data_fingerprint": data_fingerprint,
                    "stage": stage, "preprocessing": prep.model_dump(mode="json"), "cache_version": CACHE_VERSION}
            with temp_folder(folder) as tmp:  # filled beside, then renamed: a cache folder is whole or absent
                meta["cases"] = _build(task, root, prep, convention, tmp)
                (tmp / "meta.json").write_text(json.dumps(meta, sort_keys=True, indent=2) + "\n")
                publish_folder(tmp, folder)
    return read_cache(folder)


def _adopt_legacy(task: Task, root: Path, prep: Preprocessing, stage: dict, data_fingerprint: str,
                  folder: Path) -> bool:
    """Move the cache that ctbench keyed by the legacy (mtime) fingerprint to ``folder``, rather
    than rebuild it, where the files at ``root`` give that very fingerprint today: they are the
    files it was built from. Its meta.json keeps the legacy value (``legacy_data_fingerprint``),
    so ``splits verify`` still matches it to the split manifests written before."""
    legacy = legacy_fingerprint(root)
    old = folder.with_name(slice_cache_key(task, legacy, prep, stage))
    if legacy == data_fingerprint or not (old / "meta.json").is_file():
        return False
    with exclusive(old, f"moving {task.spec.name}'s slice cache to its new key"):
        if not (old / "meta.json").is_file():  # another process moved it meanwhile
            return False
        meta = json.loads((old / "meta.json").read_text())
        write_json(old / "meta.json", {**meta, "data_fingerprint": data_fingerprint,
                                       "legacy_data_fingerprint": legacy})  # first: a crash leaves it adoptable again
        publish_folder(old, folder)
    log.warning("slice cache of %s: moved %s, keyed by the old mtime-based dataset fingerprint, to %s "
                "(datasets are now identified by their contents); nothing was rebuilt",
                task.spec.name, old.name, folder.name)
    return True


def read_cache(folder: Path) -> SliceSet:
    """Images (and masks) memory-mapped read-only; the small arrays in memory."""
    try:
        meta = json.loads((folder / "meta.json").read_text())
        stage = meta.get("stage", {})
    except (OSError, ValueError, AttributeError) as exc:
        raise DataError(f"slice cache metadata is unreadable ({exc}); delete the folder to rebuild it", folder) from None
    try:
        arrays = {name: _load(folder / f"{name}.npy") for name in ARRAYS}
    except (OSError, ValueError) as exc:
        raise DataError(f"slice cache is unreadable ({exc}); delete the folder to rebuild it", folder) from None
    if len({len(array) for array in arrays.values()}) != 1:
        raise DataError("slice cache arrays disagree in length; delete the folder to rebuild it", folder)
    return SliceSet(arrays["images"], arrays["labels"], arrays["patient_ids"], arrays["case_ids"], folder.name,
                    arrays["official"], stage)


def _load(path: Path) -> np.ndarray:
    """Pixel arrays (images, masks) stay mapped; ids and class labels are small enough to read."""
    array = np.load(path, mmap_mode="r", allow_pickle=False)
    return array if array.ndim >= 3 else np.array(array)


def _build(task: Task, root: Path, prep: Preprocessing, convention: InputConvention, folder: Path) -> int:
    """Streams the task's slices into ``folder``, one at a time; returns how many there were."""
    name = task.spec.name
    transform = slice_transform(prep, convention, task.spec.domain, fit=False)
    segmentation = task.spec.kind == "segmentation"
    mask_fit = mask_transform(prep) if segmentation else None
    labels, patients, case_ids, official, seen = [], [], [], [], set()
    with ExitStack() as files:
        images = files.enter_context(StreamedArray(folder / "images.npy"))
        masks = files.enter_context(StreamedArray(folder / "labels.npy")) if segmentation else None
        for case in tqdm(task.cases(root), desc=f"reading {name}", unit="slice", leave=False):
            spacing = _spacing(case, prep, root)
            if case.case_id in seen:
                raise DataError(f"task {name} yields duplicate case ids ({case.case_id!r} twice)", root)
            seen.add(case.case_id)
            image = transform(case.image, spacing)
            if images.row_shape is not None and image.shape != images.row_shape:
                raise DataError(f"task {name} yields slices with {sorted({image.shape[0], images.row_shape[0]})} "
                                "channels; a task's slices must agree", root)
            images.append(image, value_dtype(case.image, image) if convention.resize_first else np.float16)
            if masks is not None:
                masks.append(mask_fit(case.label, spacing), np.uint8)
            else:
                labels.append(np.asarray(case.label))
            patients.append(case.patient_id)
            case_ids.append(case.case_id)
            official.append(_official_split(case, root))
        if not case_ids:
            raise DataError(f"no cases found for task {name}", root)
        images.finish()
        if masks is not None:
            masks.finish()
        else:
            np.save(folder / "labels.npy", np.stack(labels).astype(np.int64), allow_pickle=False)
    for array_name, values, dtype in (("patient_ids", patients, str), ("case_ids", case_ids, str),
                                      ("official", official, "<U5")):
        np.save(folder / f"{array_name}.npy", np.asarray(values, dtype=dtype), allow_pickle=False)
    return len(case_ids)


def _spacing(case, prep: Preprocessing, root: Path):
    spacing = case.meta.get("spacing")
    if prep.spacing_mm is not None and spacing is None:
        raise DataError(f"case {case.case_id} has no pixel spacing, which the task's preprocessing "
                        f"(spacing_mm={prep.spacing_mm}) needs", root)
    return spacing


def value_dtype(source: np.ndarray, values: np.ndarray) -> np.dtype:
    """The narrowest dtype that holds ``values`` (a raw slice, resized) as the cache stores it.

    An integral source (an 8-bit image: uint8; CT in HU: int16) keeps integers, so a resized
    value is rounded to the nearest: at most 0.5 HU, or 0.5/255 of an 8-bit range (float16,
    which the cache used before, rounds 1 HU apart beyond 2,048 HU). Anything else is float16
    where it fits, else float32.
    """
    low, high = float(values.min()), float(values.max())
    if np.issubdtype(source.dtype, np.integer) or np.array_equal(source, np.rint(source)):
        for dtype in (np.uint8, np.int16):
            if np.iinfo(dtype).min <= round(low) and round(high) <= np.iinfo(dtype).max:
                return np.dtype(dtype)
    return np.dtype(np.float16 if max(abs(low), abs(high)) < FLOAT16_LIMIT else np.float32)


class StreamedArray:
    """An .npy file written a row at a time, its header last, so neither the number of rows nor
    all of them in memory is needed: room for the header is reserved at the start and filled in
    by ``finish``. A row that needs a wider dtype than the rows so far (``np.promote_types``:
    uint8 -> int16 or float16; int16 with float16 -> float32) rewrites those rows, a chunk at a
    time, so memory stays flat."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.rows = 0
        self.row_shape: tuple[int, ...] | None = None
        self.dtype: np.dtype | None = None
        self._file = open(self.path, "wb")
        self._file.write(bytes(HEADER_BYTES))

    def __enter__(self) -> "StreamedArray":
        return self

    def __exit__(self, *exc) -> None:
        self._file.close()

    def append(self, row: np.ndarray, dtype) -> None:
        if self.dtype is None:
            self.row_shape, self.dtype = tuple(row.shape), np.dtype(dtype)
        elif tuple(row.shape) != self.row_shape:
            raise ValueError(f"row of shape {row.shape} after rows of {self.row_shape}")
        wider = np.promote_types(self.dtype, dtype)
        if wider != self.dtype:
            self._widen(wider)
        self._file.write(_encode(row, self.dtype).tobytes())
        self.rows += 1

    def finish(self) -> None:
        self._file.close()
        with open(self.path, "r+b") as handle:
            handle.write(_npy_header(self.dtype, (self.rows, *self.row_shape)))

    def _widen(self, dtype: np.dtype) -> None:
        self._file.close()
        items = int(np.prod(self.row_shape))
        chunk_rows = max(1, WIDEN_CHUNK_BYTES // (items * self.dtype.itemsize))
        wider = self.path.with_name(self.path.name + ".widening")
        with open(self.path, "rb") as old, open(wider, "wb") as new:
            old.seek(HEADER_BYTES)
            new.write(bytes(HEADER_BYTES))
            for start in range(0, self.rows, chunk_rows):
                count = min(chunk_rows, self.rows - start) * items
                new.write(np.fromfile(old, dtype=self.dtype, count=count).astype(dtype).tobytes())
        os.replace(wider, self.path)
        self._file = open(self.path, "ab")
        self.dtype = dtype


def _encode(row: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """Floats bound for an integer dtype are rounded, not truncated."""
    if dtype.kind in "iu" and row.dtype.kind == "f":
        row = np.rint(row)
    return np.ascontiguousarray(row, dtype=dtype)


def _npy_header(dtype: np.dtype, shape: tuple[int, ...]) -> bytes:
    """A version 1.0 .npy header padded to exactly HEADER_BYTES."""
    text = repr({"descr": np.lib.format.dtype_to_descr(dtype), "fortran_order": False, "shape": tuple(shape)})
    room = HEADER_BYTES - 10  # magic (6), version (2), header length (2)
    if len(text) + 1 > room:
        raise ValueError(f"an .npy header for shape {shape} does not fit in {HEADER_BYTES} bytes")
    body = (text.ljust(room - 1) + "\n").encode("latin1")
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(body)) + body


def _official_split(case, root: Path) -> str:
    split = case.meta.get("split", "")
    if split not in ("", *OFFICIAL_SPLITS):
        raise DataError(f"case {case.case_id} has official split {split!r}, expected one of {OFFICIAL_SPLITS}", root)
    return split
