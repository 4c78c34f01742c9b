"""Reference checkpoints every submission is compared with."""
from __future__ import annotations

from benchmark.specs import CheckpointSpec

RANDOM_INIT_SEED = 0


def builtin_checkpoints() -> list[CheckpointSpec]:
    return [
        CheckpointSpec(
            name="random",
            arch="resnet18",
            pretraining_domain="none",
            method="random-init",
            data="none",
            demo=True,
            description=f"timm default initialisation, torch seed {RANDOM_INIT_SEED}: the floor every pretraining must beat",
        ),
    ]
