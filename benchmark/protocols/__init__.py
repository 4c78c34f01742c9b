"""Evaluation protocols by name; each has a version that is recorded in every result."""
from __future__ import annotations

from benchmark.registry import Registry

from .base import JobContext, Outcome, Protocol
from .finetune import Finetune
from .knn import KNN
from .linear import LinearProbe
from .segmentation import SegFinetune, SegLinear

PROTOCOLS: Registry[Protocol] = Registry("protocol", lambda p: p.name)
for _protocol in (LinearProbe(), KNN(), Finetune(), SegLinear(), SegFinetune()):
    PROTOCOLS.add(_protocol, f"builtin {type(_protocol).__module__}")

__all__ = ["PROTOCOLS", "JobContext", "Outcome", "Protocol"]
