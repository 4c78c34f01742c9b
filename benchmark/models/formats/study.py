"""The study's own encoders.

(a) the released SimCLR encoder: a torchvision ResNet-50 state dict saved without ``fc``;
(b) finetuned classifiers: ``encoder.*`` (the same ResNet) plus a linear ``head.weight``/``head.bias``,
    which is reported as ignored head keys.
"""
from __future__ import annotations

from pathlib import Path

from benchmark.models.formats.base import Extracted
from benchmark.models.formats.keys import rename, tensor_dict, unwrap


def extract(obj: object, path: Path) -> Extracted:
    state = tensor_dict(unwrap(obj), path)
    if not any(k.startswith("encoder.") for k in state):
        return Extracted(state, notes=["study encoder (a): a torchvision ResNet state dict without fc"])
    mapped = rename(state, lambda k: k[len("encoder."):] if k.startswith("encoder.") else k, path,
                    "once encoder. is removed")
    return Extracted(mapped, head_prefixes=("head",), notes=["study finetuned encoder (b): encoder.* + head.*"])
