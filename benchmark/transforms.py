"""Slice preprocessing as MONAI transforms: HU windows to channels, then resize.

Each window becomes one channel (soft tissue, lung, bone), the usual way to give a
3-channel ImageNet-style network the dynamic range of CT.
"""
from __future__ import annotations

import numpy as np
from monai.transforms import Resize, ScaleIntensity, ScaleIntensityRange

from .specs import Preprocessing


def slice_transform(prep: Preprocessing):
    """Returns a callable: 2-D array -> float32 (channels, size, size) in [0, 1]."""
    if prep.windows:
        scalers = [ScaleIntensityRange(*w.bounds, b_min=0.0, b_max=1.0, clip=True) for w in prep.windows]
    else:
        scalers = [ScaleIntensity(minv=0.0, maxv=1.0)]
    resize = Resize((prep.size, prep.size), mode="area")

    def apply(image: np.ndarray) -> np.ndarray:
        planes = [np.asarray(scale(image[None].astype(np.float32))) for scale in scalers]
        stacked = np.concatenate(planes, axis=0)
        resized = np.asarray(resize(stacked), dtype=np.float32)
        reps = -(-prep.channels // len(planes))
        return np.concatenate([resized] * reps, axis=0)[: prep.channels]

    return apply
