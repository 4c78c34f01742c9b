"""Checkpoint formats researchers actually have, mapped onto timm models.

Each format is one :class:`~.base.Format` object (detection rules, extraction, input convention) in
its own module, collected by name in :data:`~.registry.CHECKPOINT_FORMATS`. ``detect_format`` says
what a file is and why, ``inspect_checkpoint`` reports how it fits an architecture without raising
for mismatched keys, and ``load_checkpoint`` loads it or fails with the missing and unexpected
backbone keys. Files are read only with safetensors or ``torch.load(weights_only=True)`` (see
:mod:`.safe_load`).
"""
from __future__ import annotations

from benchmark.models.formats.base import Extracted, Format
from benchmark.models.formats.detect import detect_format
from benchmark.models.formats.folders import resolve_weight_file
from benchmark.models.formats.keys import KeyReport
from benchmark.models.formats.loader import Prepared, inspect_checkpoint, load_checkpoint, prepare
from benchmark.models.formats.registry import CHECKPOINT_FORMATS, get_format
from benchmark.models.formats.safe_load import read_object
from benchmark.models.radimagenet_resnet import RadImageNetResNet50

#: the format names, in CheckpointSpec.format's order
FORMATS = tuple(CHECKPOINT_FORMATS)

__all__ = ["CHECKPOINT_FORMATS", "FORMATS", "Extracted", "Format", "KeyReport", "Prepared", "RadImageNetResNet50",
           "detect_format", "get_format", "inspect_checkpoint", "load_checkpoint", "prepare", "read_object",
           "resolve_weight_file"]
