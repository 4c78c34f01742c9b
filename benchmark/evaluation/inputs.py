"""Cached slices -> what one checkpoint's network expects, in the checkpoint's own convention.

The slice cache holds either raw values resized (a convention that resizes first, such as the
study's) or values already mapped to [0, 1] (one that maps at full resolution); ``InputPipeline``
finishes the job: the intensity mapping where the cache left it undone, the channel count, and
the checkpoint's mean/std. Training protocols augment between ``unit`` and ``standardize``,
because photometric augmentations are defined on [0, 1] images. Kept apart from features.py,
which imports MONAI: training protocols need only this.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from benchmark.core.specs import InputConvention, Window
from benchmark.data.intensity import fit_channels, to_unit


@dataclass(frozen=True)
class InputPipeline:
    convention: InputConvention
    domain: str
    task_windows: tuple[Window, ...] = ()
    mapped: bool = True  # the cache already holds [0, 1] planes

    def unit(self, x: torch.Tensor) -> torch.Tensor:
        """Cached rows -> float32 [0, 1] planes with the convention's channel count.

        ``x`` is as the cache stores it, on any device: raw values in the source's own dtype
        (uint8, int16, float16/32) and channels, or the distinct [0, 1] planes in float16; the
        copies of a grey plane are made here, after the transfer, not on disk.
        """
        x = x.float()
        if self.mapped:
            return fit_channels(x, self.convention.channels)
        return to_unit(x, self.convention, self.domain, list(self.task_windows))

    def standardize(self, x: torch.Tensor) -> torch.Tensor:
        if self.convention.mean is None:
            return x
        channels = x.shape[1]
        mean = torch.tensor(self.convention.mean[:channels], dtype=x.dtype, device=x.device).view(1, -1, 1, 1)
        std = torch.tensor(self.convention.std[:channels], dtype=x.dtype, device=x.device).view(1, -1, 1, 1)
        return (x - mean) / std

    def __call__(self, batch: np.ndarray | torch.Tensor) -> torch.Tensor:
        x = torch.from_numpy(np.require(batch, requirements=["C", "W"])) if isinstance(batch, np.ndarray) else batch
        return self.standardize(self.unit(x))

    def describe(self) -> dict:
        """What a result records of the input its network saw."""
        return {**self.convention.model_dump(mode="json"), "domain": self.domain,
                "intensity_applied": self.convention.intensity_for(self.domain),
                "cache_values": "unit" if self.mapped else "raw"}


def to_model_input(batch: np.ndarray, spec) -> torch.Tensor:
    """Slices already in [0, 1] -> ``spec``'s (a CheckpointSpec's) channels and mean/std."""
    return InputPipeline(spec.input, domain="", mapped=True)(batch)
