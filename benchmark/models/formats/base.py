"""What a checkpoint format is: how to recognise a file, how to take its backbone out, how it sees input.

Each format module defines one :class:`Format` (``timm_dict`` two: plain files and safetensors);
:mod:`.registry` collects them under the names of ``CheckpointSpec.format``. Detection runs every
format's :class:`Rule` in one global order (a rule's ``priority``), because the evidence of
different formats interleaves: a study encoder outranks an older solo-learn file, which outranks
RadImageNet's biased convs.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Callable, Mapping

import torch

from benchmark.core.specs import INPUT_CONVENTIONS, InputConvention
from benchmark.models.formats.keys import strip_wrappers, unwrap
from benchmark.models.formats.safe_load import is_safetensors

#: how ImageNet-pretrained weights see their input (timm's and torchvision's default)
IMAGENET_INPUT = {"mean": (0.485, 0.456, 0.406), "std": (0.229, 0.224, 0.225), "channel_order": "RGB"}
#: where a format's backbone usually sits in a file: the first of these that a key starts with
BACKBONE_PREFIXES = ("backbone.", "encoder.")


@dataclass
class Extracted:
    """What a format hands the loader: the backbone tensors under the target model's key names."""

    state: dict[str, torch.Tensor]
    #: prefixes of classifier heads in the file besides the model's own classifier (reported, not loaded)
    head_prefixes: tuple[str, ...] = ()
    #: parts of the file that are not the backbone by the format's convention (projector, momentum copy...)
    dropped: dict[str, int] = field(default_factory=dict)
    arch: str | None = None
    arch_source: str = ""
    #: timm constructor arguments the file's own config fixes beyond the architecture's name (a
    #: transformers config.json's width and depth, for example)
    model_kwargs: dict = field(default_factory=dict)
    method: str = ""
    notes: list[str] = field(default_factory=list)
    #: how this file's weights see their input, where the file says more than its format (a transformers
    #: preprocessor_config.json's mean/std, for example); None: the format's convention
    convention: InputConvention | None = None


class Evidence:
    """What detection looks at, each part computed once and only when a rule asks for it."""

    def __init__(self, path: Path, obj: object):
        self.path, self.obj = path, obj

    @cached_property
    def top(self) -> Mapping:
        return self.obj if isinstance(self.obj, Mapping) else {}

    @cached_property
    def keys(self) -> list[str]:
        """The state dict's keys, wrappers unwrapped and ``module.``/``_orig_mod.`` stripped."""
        inner = unwrap(self.obj)
        return [strip_wrappers(str(k)) for k in inner] if isinstance(inner, Mapping) else []

    @cached_property
    def prefix(self) -> str | None:
        return next((p for p in BACKBONE_PREFIXES if any(k.startswith(p) for k in self.keys)), None)

    @cached_property
    def args_json(self) -> bool:
        return (self.path.parent / "args.json").is_file()

    @cached_property
    def safetensors(self) -> bool:
        return is_safetensors(self.path)


@dataclass(frozen=True)
class Rule:
    """One piece of detection evidence: ``check`` returns the reason it names, or None."""

    priority: int  # lower runs first, across all formats
    check: Callable[[Evidence], str | None]


@dataclass(frozen=True)
class Format:
    """One checkpoint format: its name (a ``CheckpointSpec.format``), detection, extraction, input convention."""

    name: str
    extract: Callable[[object, Path], Extracted]
    rules: tuple[Rule, ...] = ()
    #: how the weights were pretrained to see their input: mean, std (in the file's channel order) and that order
    input_hint: Mapping[str, object] = field(default_factory=lambda: dict(IMAGENET_INPUT))
    #: the input convention a checkpoint of this format gets unless its submitter names another
    convention: InputConvention = INPUT_CONVENTIONS["imagenet_rgb"]
    #: the timm model the keys are for, given the architecture named and the file (it may refuse the name with a
    #: CheckpointError); None: that name itself
    timm_model: Callable[[str, Path], str] | None = None
    #: other names for the architecture the file itself records (never a conflict with it)
    arch_aliases: tuple[str, ...] = ()
    #: whether a ResNet can be recognised from the keys' names and shapes (the timm/torchvision layout)
    resnet_layout: bool = True

    def detect(self, evidence: Evidence) -> str | None:
        """The reason the first of this format's own rules gives, or None (the global order is the registry's)."""
        return next((reason for rule in self.rules if (reason := rule.check(evidence))), None)

    def model_name(self, arch: str, path: Path) -> str:
        """The timm name to build for ``arch``; a CheckpointError naming ``path`` when the format cannot be one."""
        return arch if self.timm_model is None else self.timm_model(arch, path)

    def hint(self) -> dict:
        """The input hint as JSON-ready values."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in self.input_hint.items()}
