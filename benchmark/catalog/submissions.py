"""Submitted checkpoints live in the workdir, one CheckpointSpec JSON per name.

That makes a submission a third source of checkpoints beside the built-in baselines and
installed plugins: every later `ctbench run` in the same workdir evaluates it too, and
the same name can never silently point at a different file.
"""
from __future__ import annotations

import json
from pathlib import Path

from pydantic import ValidationError

from benchmark.core.atomic import write_json
from benchmark.core.errors import ConfigError
from benchmark.core.specs import CheckpointSpec


def submission_path(folder: Path, name: str) -> Path:
    return folder / f"{name}.json"


def load_submissions(folder: Path) -> list[tuple[CheckpointSpec, Path]]:
    specs = []
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        try:
            specs.append((CheckpointSpec.model_validate(json.loads(path.read_text())), path))
        except (json.JSONDecodeError, ValidationError, UnicodeDecodeError) as exc:
            raise ConfigError(f"not a valid submission ({str(exc).splitlines()[0]})", path) from None
    return specs


def record_submission(folder: Path, spec: CheckpointSpec) -> bool:
    """Store ``spec``; returns False when the same name and bytes were submitted before."""
    path = submission_path(folder, spec.name)
    if path.exists():
        previous = CheckpointSpec.model_validate(json.loads(path.read_text()))
        if previous.sha256 != spec.sha256:
            raise ConfigError(f"name {spec.name!r} is already taken by a file with sha256 {previous.sha256}; "
                              "choose another --name", spec.weights)
        if previous == spec:
            return False
    write_json(path, spec.model_dump(mode="json"))
    return True
