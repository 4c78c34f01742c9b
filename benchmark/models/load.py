"""A checkpoint spec's weights on their timm model, loaded without executing code.

Only safetensors and ``torch.load(weights_only=True)`` are used: a checkpoint is a
stranger's file. Keys must match exactly, and a mismatch lists both sides, because
solo-learn's ``strict=False`` showed how quietly a half-random backbone gets evaluated.
"""
from __future__ import annotations

from pathlib import Path

from torch import nn

from benchmark.core.errors import CheckpointError
from benchmark.core.specs import CheckpointSpec
from benchmark.models.formats import load_checkpoint


def load_backbone(spec: CheckpointSpec, img_size: int | None = None) -> nn.Module:
    """The spec's weights on their model built for ``img_size`` px input, in eval mode; ``forward``
    returns features pooled as the spec's input convention says.

    The file goes through the adapter for ``spec.format``; the first conv is adapted to
    ``spec.input.channels`` when the file has another channel count. How the file was loaded
    (key report, input-conv adaptation, format notes) is kept as ``model.ctbench_load``.
    """
    if spec.weights is None:
        raise CheckpointError(f"checkpoint {spec.name} has no weight file")
    loaded = load_checkpoint(Path(spec.weights), arch=spec.arch, fmt=spec.format, in_chans=spec.input.channels,
                             img_size=img_size, pooling=spec.input.pooling)
    model = loaded.model
    model.ctbench_load = loaded.summary()
    return model
