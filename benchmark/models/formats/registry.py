"""Every checkpoint format by its ``CheckpointSpec.format`` name, and the detection rules in their one order.

The names are exactly ``typing.get_args(benchmark.core.specs.CheckpointFormat)``, in its order (a test
ties the two). A new format is one module defining a :class:`~.base.Format`, added to ``_ALL``.
"""
from __future__ import annotations

from pathlib import Path

from benchmark.core.errors import CheckpointError
from benchmark.models.formats import (
    beit_original,
    dinov2_original,
    hf_transformers,
    lightly_ssl,
    mae_original,
    open_clip_format,
    radimagenet,
    radiologynet,
    solo_learn,
    study,
    timm_dict,
    torchvision_dict,
)
from benchmark.models.formats.base import Format, Rule

_ALL = (timm_dict.TIMM, timm_dict.SAFETENSORS, torchvision_dict.FORMAT, solo_learn.FORMAT, lightly_ssl.FORMAT,
        study.FORMAT, radimagenet.FORMAT, radiologynet.FORMAT, hf_transformers.FORMAT, open_clip_format.FORMAT,
        dinov2_original.FORMAT, mae_original.FORMAT, beit_original.FORMAT)


def _collect(formats: tuple[Format, ...]) -> dict[str, Format]:
    by_name: dict[str, Format] = {}
    for fmt in formats:
        if fmt.name in by_name:
            raise ValueError(f"two checkpoint formats named {fmt.name!r}")
        by_name[fmt.name] = fmt
    return by_name


def _order(formats: tuple[Format, ...]) -> tuple[tuple[Rule, Format], ...]:
    rules = sorted(((rule, fmt) for fmt in formats for rule in fmt.rules), key=lambda pair: pair[0].priority)
    priorities = [rule.priority for rule, _ in rules]
    if len(set(priorities)) != len(priorities):
        raise ValueError(f"detection rules share a priority: {priorities}")
    return tuple(rules)


#: name -> format, in CheckpointFormat's order (the order error messages list them in)
CHECKPOINT_FORMATS: dict[str, Format] = _collect(_ALL)
#: every format's detection rules, first to run first
DETECTION_RULES: tuple[tuple[Rule, Format], ...] = _order(_ALL)


def get_format(name: str, path: Path) -> Format:
    """The format called ``name``; a CheckpointError naming ``path`` and the known names otherwise."""
    if name not in CHECKPOINT_FORMATS:
        raise CheckpointError(f"unknown checkpoint format {name!r}; known: {', '.join(CHECKPOINT_FORMATS)}", path)
    return CHECKPOINT_FORMATS[name]
