"""Frozen-backbone features, extracted once and cached on disk.

The cache key holds everything the features depend on: the checkpoint's sha256, the
task and its version, the split manifest's sha256 and the preprocessing. (CLIP_benchmark
left the split out of its key; a changed split then silently reused stale features.)
"""
from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from benchmark.core.atomic import read_npz, write_npz
from benchmark.core.errors import DataError
from benchmark.core.hashing import canonical_hash
from benchmark.core.locks import exclusive
from benchmark.core.specs import CheckpointSpec, Preprocessing
from benchmark.data.slices import SliceSet
from benchmark.evaluation.accel import Accelerator, batches, largest_batch
from benchmark.evaluation.inputs import InputPipeline

log = logging.getLogger(__name__)


def feature_cache_key(checkpoint: CheckpointSpec, task: str, task_version: str, split_sha: str,
                      prep: Preprocessing, precision: str = "fp32") -> str:
    """The architecture, input convention and precision are in the key too: each changes the
    features of one file (bf16 features are not fp32 features)."""
    return canonical_hash([checkpoint.sha256, checkpoint.arch, checkpoint.input.model_dump(mode="json"), task,
                           task_version, split_sha, prep.model_dump(mode="json"), precision])[:24]


def extract(model: nn.Module, slices: SliceSet, spec: CheckpointSpec, accel: Accelerator,
            batch_size: int, pipeline: InputPipeline | None = None) -> np.ndarray:
    """Pooled features of every slice, fed in ``pipeline``'s convention (default: the checkpoint's
    own, on slices already in [0, 1]); on CUDA at the largest batch that fits."""
    pipeline = pipeline or InputPipeline(spec.input, domain="", mapped=True)
    model = accel.prepare(model).eval()
    return largest_batch(lambda size: _extract(model, slices, spec, pipeline, accel, size), batch_size, accel)


@torch.inference_mode()
def _extract(model: nn.Module, slices: SliceSet, spec: CheckpointSpec, pipeline: InputPipeline, accel: Accelerator,
             batch_size: int) -> np.ndarray:
    chunks = []
    for rows in tqdm(batches(len(slices), batch_size), desc=f"features {spec.name}", unit="batch", leave=False):
        x = accel.to_device(pipeline(slices.images[rows]))
        with accel.autocast():
            chunks.append(model(x).float().cpu().numpy())
    return np.concatenate(chunks)


def cached_features(path: Path, slices: SliceSet, compute) -> tuple[np.ndarray, dict]:
    """Load (features, how the checkpoint was loaded) from ``path``, or compute and store them.

    ``compute`` returns the same pair; case ids guard the row order of a cached file. The
    cache key's lock makes concurrent workers compute it once: the others wait, then load.
    """
    with exclusive(path, f"extracting features into {path.name}", log.info):
        return _load_or_compute(path, slices, compute)


def _load_or_compute(path: Path, slices: SliceSet, compute) -> tuple[np.ndarray, dict]:
    if path.exists():
        log.info("features from the cache %s", path)
        cached = read_npz(path)
        if not np.array_equal(cached["case_ids"], slices.case_ids):
            raise DataError("feature cache rows do not match the task's cases; delete the file", path)
        return cached["features"], json.loads(str(cached["load_record"]))
    log.info("extracting features of %d slices into %s", len(slices), path)
    features, load_record = compute()
    if not np.isfinite(features).all():
        raise DataError("backbone produced non-finite features", path)
    write_npz(path, features=features, case_ids=slices.case_ids, load_record=np.asarray(json.dumps(load_record)))
    return features, load_record
