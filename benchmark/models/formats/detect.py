"""Which format a file is in, and why: every answer names the evidence.

The evidence is each format's own (:class:`~.base.Rule` in its module); the rules run in one global
order, kept in :mod:`.registry`, and the last one (timm's) accepts any file.
"""
from __future__ import annotations

from pathlib import Path

from benchmark.models.formats.base import Evidence
from benchmark.models.formats.registry import DETECTION_RULES
from benchmark.models.formats.safe_load import read_object


def detect_format(path: Path | str, obj: object = None) -> tuple[str, str]:
    """``(format, reason)``; ``format`` is a CheckpointSpec format name. Reads the file safely if ``obj`` is None."""
    path = Path(path)
    if obj is None:
        obj, _ = read_object(path)
    evidence = Evidence(path, obj)
    for rule, fmt in DETECTION_RULES:
        reason = rule.check(evidence)
        if reason:
            return fmt.name, reason
    raise AssertionError("the timm format's last detection rule accepts every file")
