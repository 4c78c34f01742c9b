"""What a format adapter hands the loader: the backbone tensors under the target model's key names."""
from __future__ import annotations

from dataclasses import dataclass, field

import torch


@dataclass
class Extracted:
    state: dict[str, torch.Tensor]
    #: prefixes of classifier heads in the file besides the model's own classifier (reported, not loaded)
    head_prefixes: tuple[str, ...] = ()
    #: parts of the file that are not the backbone by the format's convention (projector, momentum copy...)
    dropped: dict[str, int] = field(default_factory=dict)
    arch: str | None = None
    arch_source: str = ""
    method: str = ""
    notes: list[str] = field(default_factory=list)
    #: which model class the keys are for: a timm model, or the RadImageNet port's own ResNet50
    family: str = "timm"
