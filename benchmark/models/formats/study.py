"""The study's own encoders.

(a) the released SimCLR encoder: a torchvision ResNet-50 state dict saved without ``fc``;
(b) finetuned classifiers: ``encoder.*`` (the same ResNet) plus a linear ``head.weight``/``head.bias``,
    which is reported as ignored head keys.
"""
from __future__ import annotations

from pathlib import Path

from benchmark.core.specs import INPUT_CONVENTIONS
from benchmark.models.formats.base import Evidence, Extracted, Format, Rule
from benchmark.models.formats.keys import rename, tensor_dict, unwrap


def extract(obj: object, path: Path) -> Extracted:
    state = tensor_dict(unwrap(obj), path)
    if not any(k.startswith("encoder.") for k in state):
        return Extracted(state, notes=["study encoder (a): a torchvision ResNet state dict without fc"])
    mapped = rename(state, lambda k: k[len("encoder."):] if k.startswith("encoder.") else k, path,
                    "once encoder. is removed")
    return Extracted(mapped, head_prefixes=("head",), notes=["study finetuned encoder (b): encoder.* + head.*"])


def _finetuned(evidence: Evidence) -> str | None:
    if evidence.prefix == "encoder." and any(k.startswith("head.") for k in evidence.keys):
        return "encoder.* keys with a head.* classifier (the study's finetuned encoders)"
    return None


#: encoder (a) has plain torchvision keys, read as timm when detected; only (b) has evidence of its own
# The study fed every network bilinear-resized slices, min-max scaled per slice, grey x3, unstandardised.
FORMAT = Format("study", extract, rules=(Rule(60, _finetuned),), convention=INPUT_CONVENTIONS["minmax_grey3"])
