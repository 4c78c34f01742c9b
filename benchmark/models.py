"""Backbones come from timm; checkpoint files are loaded without executing code.

Only safetensors and ``torch.load(weights_only=True)`` are used: a checkpoint is a
stranger's file. Keys must match exactly, and a mismatch lists both sides, because
solo-learn's ``strict=False`` showed how quietly a half-random backbone gets evaluated.
"""
from __future__ import annotations

from pathlib import Path

import timm
from safetensors.torch import save
from torch import nn

from .atomic import atomic_open
from .errors import CheckpointError
from .specs import CheckpointSpec


def create_backbone(arch: str, in_chans: int = 3) -> nn.Module:
    """A timm model with its classifier removed: forward() returns pooled features."""
    try:
        return timm.create_model(arch, pretrained=False, num_classes=0, in_chans=in_chans)
    except RuntimeError as exc:
        raise CheckpointError(f"unknown timm architecture {arch!r}: {exc}") from None


def load_backbone(spec: CheckpointSpec) -> nn.Module:
    """The spec's weights on their model, in eval mode; ``forward`` returns pooled features.

    The file goes through the adapter for ``spec.format``; the first conv is adapted to
    ``spec.input.channels`` when the file has another channel count. How the file was loaded
    (key report, input-conv adaptation, format notes) is kept as ``model.ctbench_load``.
    """
    if spec.weights is None:
        raise CheckpointError(f"checkpoint {spec.name} has no weight file")
    from .formats import load_checkpoint

    loaded = load_checkpoint(Path(spec.weights), arch=spec.arch, fmt=spec.format, in_chans=spec.input.channels)
    model = loaded.model
    model.ctbench_load = loaded.summary()
    return model


def save_backbone(model: nn.Module, path: Path) -> None:
    with atomic_open(path, "wb") as handle:
        handle.write(save({k: v.contiguous() for k, v in model.state_dict().items()}))
