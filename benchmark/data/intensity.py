"""Raw slice values (HU, a modality's own scale) -> [0, 1] planes, in one checkpoint's convention.

One implementation for both places a mapping runs: on the full-resolution slice when the slice
cache is built (a convention that maps before resizing), and on a batch of resized raw slices
when it is fed to a network (the study's order: resize, then min-max). Torch rather than MONAI's
intensity transforms so that the same code runs on the device in a training loop.
"""
from __future__ import annotations

import torch

from benchmark.core.specs import InputConvention, Window


def to_unit(x: torch.Tensor, convention: InputConvention, domain: str, task_windows: list[Window]) -> torch.Tensor:
    """(N, C, H, W) raw values -> (N, convention.channels, H, W) in [0, 1]."""
    return fit_channels(map_planes(x, convention, domain, task_windows), convention.channels)


def map_planes(x: torch.Tensor, convention: InputConvention, domain: str, task_windows: list[Window]) -> torch.Tensor:
    """(N, C, H, W) raw values -> the distinct [0, 1] planes, before any channel is copied.

    A HU window maps one grey channel to one plane each; a source with several channels
    (colour, a 2.5-D stack, MRI modalities) keeps them and takes the first window over all of
    them. No window (``minmax``, or a task without windows) scales each slice by its own minimum
    and maximum over all its channels, as the study did. The slice cache stores these planes
    (see ``distinct_planes``), so a grey slice costs one plane on disk, not three.
    """
    windows = effective_windows(convention, domain, task_windows)
    return apply_windows(x, windows) if windows else minmax(x)


def distinct_planes(planes: torch.Tensor, channels: int) -> torch.Tensor:
    """What of ``planes`` a cache keeps: all of them, unless the convention reduces them (more
    planes than channels), where the reduction is smaller and ``fit_channels`` of it is a no-op."""
    return fit_channels(planes, channels) if planes.shape[1] > channels else planes


def effective_windows(convention: InputConvention, domain: str, task_windows) -> list[Window]:
    """The windows ``convention`` applies on ``domain``: its own, the task's, or none (min-max)."""
    intensity = convention.intensity_for(domain)
    return list(convention.windows if intensity == "windows" else task_windows if intensity == "task" else [])


def apply_windows(x: torch.Tensor, windows: list[Window]) -> torch.Tensor:
    if x.shape[1] > 1:
        windows = windows[:1]
    planes = []
    for window in windows:
        low, high = window.bounds
        planes.append(((x - low) / (high - low)).clamp_(0.0, 1.0))
    return torch.cat(planes, dim=1)


def minmax(x: torch.Tensor) -> torch.Tensor:
    """Per slice, over all its channels; a constant slice becomes zeros."""
    flat = x.flatten(1)
    low = flat.min(dim=1).values.view(-1, 1, 1, 1)
    span = (flat.max(dim=1).values.view(-1, 1, 1, 1) - low)
    return torch.where(span > 0, (x - low) / span.clamp_min(torch.finfo(x.dtype).tiny), torch.zeros_like(x))


def fit_channels(planes: torch.Tensor, channels: int) -> torch.Tensor:
    """Grey copied to every channel; more planes than channels are averaged down to one, or cut."""
    have = planes.shape[1]
    if have == channels:
        return planes
    if channels == 1:
        return planes.mean(dim=1, keepdim=True)
    reps = -(-channels // have)
    return planes.repeat(1, reps, 1, 1)[:, :channels]
