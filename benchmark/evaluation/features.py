"""Frozen-backbone features, extracted once and cached on disk.

The cache key holds everything the features depend on: the checkpoint's sha256, the
task and its version, the split manifest's sha256 and the preprocessing. (CLIP_benchmark
left the split out of its key; a changed split then silently reused stale features.)

The cache is a ``.npy`` written batch by batch through a memory map, never whole in memory
(1.28M x 2048 float32 is 10.5 GB), beside a small sidecar holding its case ids and load
record; readers get a read-only memory map of it.
"""
from __future__ import annotations

import inspect
import json
import logging
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from benchmark.core.atomic import atomic_open, read_npz, write_npz
from benchmark.core.errors import DataError
from benchmark.core.hashing import canonical_hash
from benchmark.core.locks import exclusive
from benchmark.core.specs import CheckpointSpec, Preprocessing
from benchmark.data.slices import SliceSet
from benchmark.evaluation.accel import Accelerator, batches, largest_batch
from benchmark.evaluation.inputs import InputPipeline

log = logging.getLogger(__name__)

CACHE_FORMAT = "npy-memmap-2"  # in the key: an old single-npz cache is never read as this format
FEATURE_SUFFIX = ".npy"
SIDECAR_SUFFIX = ".rows.npz"
CHECK_ROWS = 65536  # rows per block when scanning a cache for non-finite values


def feature_cache_key(checkpoint: CheckpointSpec, task: str, task_version: str, split_sha: str,
                      prep: Preprocessing, precision: str = "fp32") -> str:
    """The architecture, input convention and precision are in the key too: each changes the
    features of one file (bf16 features are not fp32 features)."""
    return canonical_hash([checkpoint.sha256, checkpoint.arch, checkpoint.input.model_dump(mode="json"), task,
                           task_version, split_sha, prep.model_dump(mode="json"), precision, CACHE_FORMAT])[:24]


def sidecar_path(path: Path) -> Path:
    return path.with_name(path.name + SIDECAR_SUFFIX)


class FeatureSink:
    """The rows of one ``.npy`` being written in place through a memory map.

    ``rows(dim)`` (re)starts the file: an extraction retried at a smaller batch (CUDA
    out-of-memory) overwrites the whole file, so no row of a failed attempt survives.
    """

    def __init__(self, handle, n_rows: int):
        self._handle, self.n_rows = handle, n_rows
        self.array: np.ndarray | None = None

    def rows(self, dim: int) -> np.ndarray:
        self.close()
        handle = self._handle
        handle.seek(0)
        handle.truncate(0)
        np.lib.format.write_array_header_1_0(handle, {"descr": np.lib.format.dtype_to_descr(np.dtype(np.float32)),
                                                      "fortran_order": False, "shape": (self.n_rows, dim)})
        offset = handle.tell()
        handle.truncate(offset + self.n_rows * dim * 4)
        handle.flush()
        self.array = (np.memmap(handle, np.float32, "r+", offset, (self.n_rows, dim)) if self.n_rows and dim
                      else np.zeros((self.n_rows, dim), np.float32))
        return self.array

    def close(self) -> None:
        if isinstance(self.array, np.memmap):
            self.array.flush()
        self.array = None


def extract(model: nn.Module, slices: SliceSet, spec: CheckpointSpec, accel: Accelerator,
            batch_size: int, pipeline: InputPipeline | None = None, into: FeatureSink | None = None) -> np.ndarray:
    """Pooled features of every slice, fed in ``pipeline``'s convention (default: the checkpoint's
    own, on slices already in [0, 1]); on CUDA at the largest batch that fits. With ``into``, the
    rows go straight into its file (returned as its memory map), else into one array in memory."""
    pipeline = pipeline or InputPipeline(spec.input, domain="", mapped=True)
    model = accel.prepare(model).eval()
    return largest_batch(lambda size: _extract(model, slices, spec, pipeline, accel, size, into), batch_size, accel)


@torch.inference_mode()
def _extract(model: nn.Module, slices: SliceSet, spec: CheckpointSpec, pipeline: InputPipeline, accel: Accelerator,
             batch_size: int, into: FeatureSink | None) -> np.ndarray:
    out = None
    for rows in tqdm(batches(len(slices), batch_size), desc=f"features {spec.name}", unit="batch", leave=False):
        x = pipeline(accel.to_device(torch.from_numpy(np.asarray(slices.images[rows]))))  # mapped on the device
        with accel.autocast():
            pooled = model(x).float().cpu().numpy()
        if out is None:
            out = into.rows(pooled.shape[1]) if into else np.empty((len(slices), pooled.shape[1]), np.float32)
        out[rows] = pooled
    return out if out is not None else np.zeros((0, 0), np.float32)


def cached_features(path: Path, slices: SliceSet, compute) -> tuple[np.ndarray, dict]:
    """Load (features as a read-only memory map, how the checkpoint was loaded) from ``path``, or
    compute and store them.

    ``compute(sink)`` writes the rows into the :class:`FeatureSink` (``extract(..., into=sink)``)
    and returns the load record; a ``compute()`` without arguments returns (features, load record)
    in memory instead (small tasks, tests). Case ids guard the row order of a cached file. The
    cache key's lock makes concurrent workers compute it once: the others wait, then load.
    """
    with exclusive(path, f"extracting features into {path.name}", log.info):
        if not path.exists():
            _compute_into(path, slices, compute)
        return _load(path, slices)


def _load(path: Path, slices: SliceSet) -> tuple[np.ndarray, dict]:
    log.info("features from the cache %s", path)
    try:
        sidecar = read_npz(sidecar_path(path))
        features = np.load(path, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError, EOFError) as exc:  # cut short, or its sidecar lost: never trusted
        raise DataError(f"feature cache is unreadable ({exc}); delete the file to recompute it", path) from None
    if features.shape[0] != len(slices) or not np.array_equal(sidecar["case_ids"], slices.case_ids):
        raise DataError("feature cache rows do not match the task's cases; delete the file", path)
    return features, json.loads(str(sidecar["load_record"]))


def _compute_into(path: Path, slices: SliceSet, compute) -> None:
    """The rows go to a locked temp file renamed to ``path`` only when whole and finite; the
    sidecar is written first, so an existing ``.npy`` always has its sidecar."""
    log.info("extracting features of %d slices into %s", len(slices), path)
    with atomic_open(path, "w+b") as handle:
        sink = FeatureSink(handle, len(slices))
        if inspect.signature(compute).parameters:
            load_record = compute(sink)
        else:
            features, load_record = compute()
            sink.rows(features.shape[1])[:] = features
        if sink.array is None:
            raise DataError("feature extraction wrote no rows", path)
        _require_finite(sink.array, path)
        sink.close()
        write_npz(sidecar_path(path), case_ids=slices.case_ids, load_record=np.asarray(json.dumps(load_record)))


def _require_finite(features: np.ndarray, path: Path) -> None:
    for start in range(0, len(features), CHECK_ROWS):
        if not np.isfinite(features[start:start + CHECK_ROWS]).all():
            raise DataError("backbone produced non-finite features", path)
