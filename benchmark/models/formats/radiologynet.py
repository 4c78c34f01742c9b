"""RadiologyNET: ``{"model_state": ..., "optimizer_state": ..., "model_name": "ResNet50", "epoch": ...}``.

Their training script saves ``model.state_dict()`` of a wrapper whose ``self.model`` is a
torchvision ResNet with a new ``fc``, so every key starts with ``model.``; the ``fc`` head (their
pretraining classes) is reported as ignored.
"""
from __future__ import annotations

from pathlib import Path
from typing import Mapping

from benchmark.models.formats.base import Evidence, Extracted, Format, Rule
from benchmark.models.formats.keys import rename, tensor_dict, unwrap_under

NAMES = {"ResNet18": "resnet18", "ResNet34": "resnet34", "ResNet50": "resnet50"}


def extract(obj: object, path: Path) -> Extracted:
    top = obj if isinstance(obj, Mapping) else {}
    state = tensor_dict(unwrap_under(obj, "model_state"), path, "a model_state of tensors")
    mapped = rename(state, lambda k: k[len("model."):] if k.startswith("model.") else k, path, "once model. is removed")
    out = Extracted(mapped, method="supervised (RadiologyNET labels)")
    name = top.get("model_name")
    if isinstance(name, str) and name in NAMES:
        out.arch, out.arch_source = NAMES[name], f"model_name {name!r} in the file"
    return out


def _model_state(evidence: Evidence) -> str | None:
    if isinstance(evidence.top.get("model_state"), Mapping):
        return "top-level 'model_state' dict (RadiologyNET's training script)"
    return None


FORMAT = Format("radiologynet", extract, rules=(Rule(10, _model_state),))
