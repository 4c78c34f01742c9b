"""Frozen-backbone features, extracted once and cached on disk.

The cache key holds everything the features depend on: the checkpoint's sha256, the
task and its version, the split manifest's sha256 and the preprocessing. (CLIP_benchmark
left the split out of its key; a changed split then silently reused stale features.)
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from .atomic import read_npz, write_npz
from .errors import DataError
from .slices import SliceSet
from .hashing import canonical_hash
from .specs import CheckpointSpec, Preprocessing


def feature_cache_key(checkpoint: CheckpointSpec, task: str, task_version: str, split_sha: str,
                      prep: Preprocessing) -> str:
    """The architecture and input convention are in the key too: they change the features of one file."""
    return canonical_hash([checkpoint.sha256, checkpoint.arch, checkpoint.input.model_dump(mode="json"), task,
                           task_version, split_sha, prep.model_dump(mode="json")])[:24]


def to_model_input(batch: np.ndarray, spec: CheckpointSpec) -> torch.Tensor:
    """Match the pretraining's channel count and normalisation convention."""
    x = torch.from_numpy(batch.astype(np.float32))
    channels = spec.input.channels
    if x.shape[1] != channels:
        x = x.mean(dim=1, keepdim=True).expand(-1, channels, -1, -1) if channels > 1 else x.mean(1, keepdim=True)
    mean = torch.tensor(spec.input.mean[:channels]).view(1, -1, 1, 1)
    std = torch.tensor(spec.input.std[:channels]).view(1, -1, 1, 1)
    return (x - mean) / std


@torch.inference_mode()
def extract(model: nn.Module, slices: SliceSet, spec: CheckpointSpec, device: torch.device,
            batch_size: int) -> np.ndarray:
    model = model.to(device).eval()
    chunks = []
    for start in tqdm(range(0, len(slices), batch_size), desc=f"features {spec.name}", unit="batch", leave=False):
        x = to_model_input(slices.images[start:start + batch_size], spec).to(device)
        chunks.append(model(x).float().cpu().numpy())
    return np.concatenate(chunks)


def cached_features(path: Path, slices: SliceSet, compute) -> tuple[np.ndarray, dict]:
    """Load (features, how the checkpoint was loaded) from ``path``, or compute and store them.

    ``compute`` returns the same pair; case ids guard the row order of a cached file.
    """
    if path.exists():
        cached = read_npz(path)
        if not np.array_equal(cached["case_ids"], slices.case_ids):
            raise DataError("feature cache rows do not match the task's cases; delete the file", path)
        return cached["features"], json.loads(str(cached["load_record"]))
    features, load_record = compute()
    if not np.isfinite(features).all():
        raise DataError("backbone produced non-finite features", path)
    write_npz(path, features=features, case_ids=slices.case_ids, load_record=np.asarray(json.dumps(load_record)))
    return features, load_record
