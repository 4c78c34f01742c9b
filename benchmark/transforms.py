"""Slice preprocessing as MONAI transforms: intensity windows to channels, then resize.

Each HU window of a CT slice becomes one channel (soft tissue, lung, bone), the usual
way to give a 3-channel ImageNet-style network the dynamic range of CT. A colour
image keeps its channels and gets one window (0-255) over all of them.
"""
from __future__ import annotations

import numpy as np
from monai.transforms import Resize, ScaleIntensity, ScaleIntensityRange

from .specs import Preprocessing


def slice_transform(prep: Preprocessing):
    """Returns a callable: (H, W) or (C, H, W) array -> float32 (channels, size, size) in [0, 1]."""
    if prep.windows:
        scalers = [ScaleIntensityRange(*w.bounds, b_min=0.0, b_max=1.0, clip=True) for w in prep.windows]
    else:
        scalers = [ScaleIntensity(minv=0.0, maxv=1.0)]
    resize = Resize((prep.size, prep.size), mode="area")

    def apply(image: np.ndarray) -> np.ndarray:
        channels_first = image[None] if image.ndim == 2 else image
        planes = [np.asarray(scale(channels_first.astype(np.float32))) for scale in scalers]
        resized = np.asarray(resize(np.concatenate(planes, axis=0)), dtype=np.float32)
        reps = -(-prep.channels // len(resized))
        return np.concatenate([resized] * reps, axis=0)[: prep.channels]

    return apply


def mask_transform(prep: Preprocessing):
    """Nearest-neighbour resize, so labels stay labels."""
    resize = Resize((prep.size, prep.size), mode="nearest")
    return lambda mask: np.asarray(resize(mask[None].astype(np.float32)))[0].astype(np.uint8)
