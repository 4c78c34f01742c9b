"""The random-init reference, written to a real safetensors file.

Materialising it means it is hashed and loaded through exactly the path a submitted
checkpoint takes, instead of being a special case in the evaluation code.
"""
from __future__ import annotations

from benchmark.core.specs import CheckpointSpec
from benchmark.core.workdir import Workdir

RANDOM_INIT_SEED = 0


def materialize(spec: CheckpointSpec, workdir: Workdir, allow_download: bool = False) -> CheckpointSpec:
    path = workdir.checkpoints / f"{spec.name}-{spec.arch}-seed{RANDOM_INIT_SEED}.safetensors"
    if not path.exists():
        import torch  # timm and torch are only needed the first time

        from benchmark.models.backbones import create_backbone, save_backbone

        torch.manual_seed(RANDOM_INIT_SEED)
        save_backbone(create_backbone(spec.arch, spec.input.channels), path)
    return spec.model_copy(update={"weights": path})
