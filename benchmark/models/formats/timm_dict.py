"""timm: a plain state dict (``.pth``/``.pt``/``.bin`` or ``.safetensors``) with timm's key names.

A classifier head in the file (``fc.*`` for ResNets; generally ``pretrained_cfg['classifier']``)
is reported as "head keys ignored" by the loader, since ctbench evaluates pooled features.
"""
from __future__ import annotations

from pathlib import Path

from benchmark.models.formats.base import Evidence, Extracted, Format, Rule
from benchmark.models.formats.keys import tensor_dict, unwrap


def extract(obj: object, path: Path) -> Extracted:
    return Extracted(tensor_dict(unwrap(obj), path))


def _safetensors(evidence: Evidence) -> str | None:
    return "safetensors file; keys taken as timm names" if evidence.safetensors else None


def _anything(evidence: Evidence) -> str:
    return "plain state dict; keys taken as timm names (timm and torchvision ResNets share them)"


SAFETENSORS = Format("safetensors", extract, rules=(Rule(90, _safetensors),))
#: the last rule of all: what no other format claims is read as a plain timm state dict
TIMM = Format("timm", extract, rules=(Rule(100, _anything),))
