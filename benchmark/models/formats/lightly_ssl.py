"""lightly: ``nn.Sequential(*list(resnet.children())[:-1])`` backbones, or LightlyTrain's ``exported_last.pt``.

The lightly examples build the backbone from a torchvision ResNet's children without ``fc``:
0 ``conv1``, 1 ``bn1``, 2 ``relu``, 3 ``maxpool``, 4-7 ``layer1``-``layer4``, 8 ``avgpool``;
only 0, 1 and 4-7 hold tensors. A saved lightly model therefore has ``backbone.0.weight``,
``backbone.4.0.conv1.weight``... next to ``projection_head.*`` (and ``*_momentum`` copies for
BYOL/MoCo), which are dropped. LightlyTrain writes ``exported_models/exported_last.pt``, a plain
torchvision state dict, loaded as such.
"""
from __future__ import annotations

import re
from pathlib import Path

from benchmark.models.formats.base import Evidence, Extracted, Format, Rule
from benchmark.models.formats.keys import split_prefix, tensor_dict, unwrap

SEQUENTIAL_TO_TIMM = {"0": "conv1", "1": "bn1", "4": "layer1", "5": "layer2", "6": "layer3", "7": "layer4"}
SEQUENTIAL_KEY = re.compile(r"^backbone\.\d+\.")


def is_sequential(keys) -> bool:
    return any(SEQUENTIAL_KEY.match(k) for k in keys)


def extract(obj: object, path: Path) -> Extracted:
    state = tensor_dict(unwrap(obj), path)
    if not is_sequential(state):
        return Extracted(state, notes=["LightlyTrain export: a torchvision state dict"])
    inside, rest = split_prefix(state, "backbone.")
    mapped = {}
    for key, value in inside.items():
        index, _, tail = key.partition(".")
        name = SEQUENTIAL_TO_TIMM.get(index)
        mapped[f"{name}.{tail}" if name else f"backbone.{key}"] = value  # unknown indices stay visible
    return Extracted(mapped, dropped=rest, notes=["lightly Sequential indices mapped to torchvision/timm names"])


def _exported(evidence: Evidence) -> str | None:
    if evidence.path.name == "exported_last.pt":
        return "file name exported_last.pt (LightlyTrain's torchvision export)"
    return None


def _sequential(evidence: Evidence) -> str | None:
    return "backbone.<index>.* keys (lightly's nn.Sequential of ResNet children)" if is_sequential(evidence.keys) else None


FORMAT = Format("lightly", extract, rules=(Rule(20, _exported), Rule(30, _sequential)))
