"""timm: a plain state dict (``.pth``/``.pt``/``.bin`` or ``.safetensors``) with timm's key names.

A classifier head in the file (``fc.*`` for ResNets; generally ``pretrained_cfg['classifier']``)
is reported as "head keys ignored" by the loader, since ctbench evaluates pooled features.
"""
from __future__ import annotations

from pathlib import Path

from benchmark.models.formats.base import Extracted
from benchmark.models.formats.keys import tensor_dict, unwrap


def extract(obj: object, path: Path) -> Extracted:
    return Extracted(tensor_dict(unwrap(obj), path))
