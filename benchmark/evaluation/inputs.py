"""Slices in [0, 1] -> what a checkpoint's network expects (channels, normalisation).

Kept apart from features.py, which imports MONAI: training protocols need only this.
"""
from __future__ import annotations

import numpy as np
import torch

from benchmark.core.specs import CheckpointSpec


def to_model_input(batch: np.ndarray, spec: CheckpointSpec) -> torch.Tensor:
    return normalize(torch.from_numpy(batch.astype(np.float32)), spec)


def normalize(x: torch.Tensor, spec: CheckpointSpec) -> torch.Tensor:
    """[0, 1] slices -> the pretraining's channel count and normalisation convention."""
    channels = spec.input.channels
    if x.shape[1] != channels:
        x = x.mean(dim=1, keepdim=True).expand(-1, channels, -1, -1) if channels > 1 else x.mean(1, keepdim=True)
    mean = torch.tensor(spec.input.mean[:channels], dtype=x.dtype).view(1, -1, 1, 1)
    std = torch.tensor(spec.input.std[:channels], dtype=x.dtype).view(1, -1, 1, 1)
    return (x - mean) / std
