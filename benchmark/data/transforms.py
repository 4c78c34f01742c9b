"""Slice geometry as MONAI transforms: the resize (or resample to a spacing) a cache entry is built with.

What a slice's intensities become is the checkpoint's business (``benchmark.data.intensity``),
so a cache entry is built in one of two ways, as the checkpoint's input convention orders it:
raw values resized (the study's order: resize first, then map), which every convention with the
same interpolation can share; or mapped to [0, 1] at full resolution, then resized (ctbench's
ImageNet convention, which windows before an area resize).

With ``spacing_mm`` a slice is first resampled to that in-plane spacing and then cropped or
padded to the output size, so one pixel means the same millimetres in every scan (a plain resize
would stretch a small field of view). Padding takes the slice's own minimum (air in raw CT; the
bottom of every window once mapped).
"""
from __future__ import annotations

from typing import Optional

import numpy as np
import torch
from monai.transforms import Resize, ResizeWithPadOrCrop

from benchmark.core.specs import InputConvention, Preprocessing
from benchmark.data.intensity import distinct_planes, fit_channels, map_planes

Spacing = Optional[tuple[float, float]]


def slice_transform(prep: Preprocessing, convention: InputConvention | None = None, domain: str = "ct",
                    fit: bool = True):
    """Returns a callable: ((H, W) or (C, H, W) array, spacing) -> float32 (C, size, size).

    Raw values with the source's channels when the convention resizes first, else [0, 1]
    planes with the convention's channel count, or with ``fit=False`` only the distinct planes
    (one per window, or the source's channels), as the slice cache stores them and
    ``InputPipeline.unit`` expands them. No convention: the task's own mapping into
    ``prep.channels``, at full resolution, then an area resize.
    """
    convention = convention or InputConvention(channels=prep.channels)
    fit_size = _fit_to_size(prep, mode=convention.interpolation)
    to_channels = fit_channels if fit else distinct_planes

    def apply(image: np.ndarray, spacing: Spacing = None) -> np.ndarray:
        channels_first = (image[None] if image.ndim == 2 else image).astype(np.float32)
        if not convention.resize_first:
            batch = torch.from_numpy(np.ascontiguousarray(channels_first))[None]
            planes = map_planes(batch, convention, domain, list(prep.windows))
            channels_first = to_channels(planes, convention.channels)[0].numpy()
        return np.asarray(fit_size(channels_first, spacing), dtype=np.float32)

    return apply


def mask_transform(prep: Preprocessing):
    """Nearest-neighbour, so labels stay labels."""
    fit = _fit_to_size(prep, mode="nearest")
    return lambda mask, spacing=None: np.asarray(fit(mask[None].astype(np.float32), spacing))[0].astype(np.uint8)


def _fit_to_size(prep: Preprocessing, mode: str):
    size = (prep.size, prep.size)
    resize = Resize(size, mode=mode)

    def fit(planes: np.ndarray, spacing: Spacing) -> np.ndarray:
        if prep.spacing_mm is None:
            return np.asarray(resize(planes))
        if spacing is None:
            raise ValueError("the task resamples to a fixed spacing, but the reader gave this case none")
        shape = [max(1, round(n * s / prep.spacing_mm)) for n, s in zip(planes.shape[1:], spacing)]
        pad_or_crop = ResizeWithPadOrCrop(size, value=float(planes.min()))
        return np.asarray(pad_or_crop(Resize(shape, mode=mode)(planes)))

    return fit
