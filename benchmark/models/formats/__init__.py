"""Checkpoint formats researchers actually have, mapped onto timm models (or the RadImageNet port).

``detect_format`` says what a file is and why, ``inspect_checkpoint`` reports how it fits an
architecture without raising for mismatched keys, and ``load_checkpoint`` loads it or fails with
the missing and unexpected backbone keys. Files are read only with safetensors or
``torch.load(weights_only=True)`` (see :mod:`.safe_load`).
"""
from __future__ import annotations

from benchmark.models.formats.detect import detect_format
from benchmark.models.formats.keys import KeyReport
from benchmark.models.formats.loader import ADAPTERS, Prepared, inspect_checkpoint, load_checkpoint, prepare
from benchmark.models.formats.radimagenet import RadImageNetResNet50
from benchmark.models.formats.safe_load import read_object

FORMATS = tuple(ADAPTERS)

__all__ = ["ADAPTERS", "FORMATS", "KeyReport", "Prepared", "RadImageNetResNet50", "detect_format",
           "inspect_checkpoint", "load_checkpoint", "prepare", "read_object"]
