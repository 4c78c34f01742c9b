"""Slice preprocessing as MONAI transforms: intensity windows to channels, then resize.

Each HU window of a CT slice becomes one channel (soft tissue, lung, bone), the usual
way to give a 3-channel ImageNet-style network the dynamic range of CT. A colour
image, or a 2.5-D stack of neighbouring slices, keeps its channels and gets one window
over all of them; no window means the study's per-image min-max scaling.

With ``spacing_mm`` a slice is first resampled to that in-plane spacing and then
cropped or padded to the output size, so one pixel means the same millimetres in
every scan (a plain resize would stretch a small field of view).
"""
from __future__ import annotations

from typing import Optional

import numpy as np
from monai.transforms import Resize, ResizeWithPadOrCrop, ScaleIntensity, ScaleIntensityRange

from benchmark.core.specs import Preprocessing

Spacing = Optional[tuple[float, float]]


def slice_transform(prep: Preprocessing):
    """Returns a callable: ((H, W) or (C, H, W) array, spacing) -> float32 (channels, size, size) in [0, 1]."""
    if prep.windows:
        scalers = [ScaleIntensityRange(*w.bounds, b_min=0.0, b_max=1.0, clip=True) for w in prep.windows]
    else:
        scalers = [ScaleIntensity(minv=0.0, maxv=1.0)]
    fit = _fit_to_size(prep, mode="area")

    def apply(image: np.ndarray, spacing: Spacing = None) -> np.ndarray:
        channels_first = image[None] if image.ndim == 2 else image
        planes = [np.asarray(scale(channels_first.astype(np.float32))) for scale in scalers]
        resized = np.asarray(fit(np.concatenate(planes, axis=0), spacing), dtype=np.float32)
        reps = -(-prep.channels // len(resized))
        return np.concatenate([resized] * reps, axis=0)[: prep.channels]

    return apply


def mask_transform(prep: Preprocessing):
    """Nearest-neighbour, so labels stay labels."""
    fit = _fit_to_size(prep, mode="nearest")
    return lambda mask, spacing=None: np.asarray(fit(mask[None].astype(np.float32), spacing))[0].astype(np.uint8)


def _fit_to_size(prep: Preprocessing, mode: str):
    size = (prep.size, prep.size)
    resize = Resize(size, mode=mode)
    pad_or_crop = ResizeWithPadOrCrop(size)  # pads with zeros: the bottom of every window

    def fit(planes: np.ndarray, spacing: Spacing) -> np.ndarray:
        if prep.spacing_mm is None:
            return np.asarray(resize(planes))
        if spacing is None:
            raise ValueError("the task resamples to a fixed spacing, but the reader gave this case none")
        shape = [max(1, round(n * s / prep.spacing_mm)) for n, s in zip(planes.shape[1:], spacing)]
        return np.asarray(pad_or_crop(Resize(shape, mode=mode)(planes)))

    return fit
