"""torchvision: a ``torchvision.models.resnet*`` state dict.

For ResNet-18/34/50/101/152 timm uses torchvision's own module names (``conv1``, ``bn1``,
``layerN.i.convK``, ``layerN.i.downsample.{0,1}``, ``fc``) and shapes, and the same forward
(stride on the 3x3 conv of a bottleneck, "ResNet v1.5"), so the keys map one to one; the
tests check that the features agree with torchvision's own forward. Other torchvision
families do not share timm's names and are reported as mismatched keys.
"""
from __future__ import annotations

from pathlib import Path

from benchmark.models.formats.base import Extracted, Format
from benchmark.models.formats.keys import tensor_dict, unwrap


def extract(obj: object, path: Path) -> Extracted:
    return Extracted(tensor_dict(unwrap(obj), path), notes=["torchvision ResNet keys are timm's, one to one"])


#: never detected (a torchvision file is read as timm, which is the same for ResNets): named explicitly
FORMAT = Format("torchvision", extract)
