"""Evaluation protocols by name; each has a version that is recorded in every result."""
from __future__ import annotations

from benchmark.registry import Registry

from .base import JobContext, Outcome, Protocol
from .linear import LinearProbe

PROTOCOLS: Registry[Protocol] = Registry("protocol", lambda p: p.name)
PROTOCOLS.add(LinearProbe(), "builtin benchmark.protocols.linear")

__all__ = ["PROTOCOLS", "JobContext", "Outcome", "Protocol"]
