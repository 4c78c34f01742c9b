"""Backbones come from timm, built without a classifier; weights are written as safetensors.

This is the lowest model layer: checkpoint formats build their models here, and nothing here
reads a checkpoint file (that is ``benchmark.models.load``). Architectures ctbench adds to timm
(the RadImageNet ResNet50 port, ``radimagenet_resnet50``) are registered by importing their module
here, so every model is made by ``timm.create_model``.
"""
from __future__ import annotations

from pathlib import Path

import timm
from safetensors.torch import save
from torch import nn

from benchmark.core.atomic import atomic_open
from benchmark.core.errors import CheckpointError
from benchmark.models import radimagenet_resnet  # noqa: F401 - registers radimagenet_resnet50 with timm


def create_backbone(arch: str, in_chans: int = 3) -> nn.Module:
    """A timm model with its classifier removed: forward() returns pooled features."""
    try:
        return timm.create_model(arch, pretrained=False, num_classes=0, in_chans=in_chans)
    except RuntimeError as exc:
        raise CheckpointError(f"unknown timm architecture {arch!r}: {exc}") from None


def save_backbone(model: nn.Module, path: Path) -> None:
    with atomic_open(path, "wb") as handle:
        handle.write(save({k: v.contiguous() for k, v in model.state_dict().items()}))
