"""Turn a registered CheckpointSpec into one with a weight file and its sha256.

Every checkpoint, the made-here baselines included, is evaluated from a hashed file,
so results are keyed by the bytes that produced them.
"""
from __future__ import annotations

from pathlib import Path
from typing import Mapping

from benchmark.core.errors import CheckpointError
from benchmark.core.hashing import file_sha256
from benchmark.core.locks import exclusive
from benchmark.core.specs import CheckpointSpec
from benchmark.core.workdir import Workdir


def is_available(spec: CheckpointSpec, weights: Mapping[str, Path], allow_download: bool = False) -> bool:
    from baselines import materializer

    return spec.name in weights or spec.weights is not None or materializer(spec.name, allow_download) is not None


def resolve(spec: CheckpointSpec, workdir: Workdir, weights: Mapping[str, Path] = {},
            allow_download: bool = False) -> CheckpointSpec:
    """``weights`` (from ``--weights NAME=FILE``) wins; baselines ctbench can make are made once."""
    from baselines import materializer

    if spec.name in weights:
        spec = spec.model_copy(update={"weights": Path(weights[spec.name]).expanduser(), "sha256": None})
    elif spec.weights is None:
        make = materializer(spec.name, allow_download)
        if make is None:
            raise CheckpointError(f"checkpoint {spec.name} needs its weight file: pass --weights {spec.name}=FILE")
        with exclusive(workdir.checkpoints / spec.name, f"making the {spec.name} baseline"):
            spec = make(spec, workdir, allow_download)
    path = Path(spec.weights)
    if not path.is_file():
        raise CheckpointError("checkpoint file does not exist", path)
    sha = file_sha256(path)
    if spec.sha256 and spec.sha256 != sha:
        raise CheckpointError(f"sha256 is {sha}, but checkpoint {spec.name} declares {spec.sha256}", path)
    return spec.model_copy(update={"weights": path, "sha256": sha})
