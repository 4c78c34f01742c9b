"""Turn a registered CheckpointSpec into one with a weight file and its sha256."""
from __future__ import annotations

from pathlib import Path

from .errors import CheckpointError
from .specs import CheckpointSpec
from .hashing import file_sha256


def resolve(spec: CheckpointSpec, checkpoint_dir: Path) -> CheckpointSpec:
    """Random-init references are written to disk first, so every checkpoint is a hashed file."""
    if spec.weights is None:
        if spec.pretraining_domain != "none":
            raise CheckpointError(f"checkpoint {spec.name} names no weight file")
        from baselines.random_init import materialize

        weights = materialize(spec, checkpoint_dir)
    else:
        weights = Path(spec.weights).expanduser()
        if not weights.is_file():
            raise CheckpointError("checkpoint file does not exist", weights)
    sha = file_sha256(weights)
    if spec.sha256 and spec.sha256 != sha:
        raise CheckpointError(f"sha256 is {sha}, but checkpoint {spec.name} declares {spec.sha256}", weights)
    return spec.model_copy(update={"weights": weights, "sha256": sha})
