"""Evaluation protocols by name; each has a version that is recorded in every result."""
from __future__ import annotations

from benchmark.core.registry import Registry
from benchmark.evaluation.protocols.base import JobContext, Outcome, Protocol
from benchmark.evaluation.protocols.finetune import Finetune
from benchmark.evaluation.protocols.knn import KNN
from benchmark.evaluation.protocols.linear import LinearProbe
from benchmark.evaluation.protocols.segmentation import SegFinetune, SegLinear
from benchmark.evaluation.protocols.study_linear import LinearStudy, SegLinearStudy

PROTOCOLS: Registry[Protocol] = Registry("protocol", lambda p: p.name)
for _protocol in (LinearProbe(), KNN(), Finetune(), SegLinear(), SegFinetune(), LinearStudy(), SegLinearStudy()):
    PROTOCOLS.add(_protocol, f"builtin {type(_protocol).__module__}")

__all__ = ["PROTOCOLS", "JobContext", "Outcome", "Protocol"]
