"""Where a run keeps data, caches, splits, checkpoints, results and the site."""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

DEFAULT_WORKDIR = "ctbench-work"
ENV_VAR = "CTBENCH_WORKDIR"


@dataclass(frozen=True)
class Workdir:
    root: Path

    @classmethod
    def resolve(cls, flag: Optional[str] = None) -> "Workdir":
        """``--workdir`` wins over ``$CTBENCH_WORKDIR``, which wins over ``./ctbench-work``."""
        return cls(Path(flag or os.environ.get(ENV_VAR) or DEFAULT_WORKDIR).expanduser().resolve())

    data = property(lambda self: self.root / "data")
    slices = property(lambda self: self.root / "cache" / "slices")
    features = property(lambda self: self.root / "cache" / "features")
    splits = property(lambda self: self.root / "splits")
    checkpoints = property(lambda self: self.root / "checkpoints")
    submissions = property(lambda self: self.root / "submissions")
    results = property(lambda self: self.root / "results")
    site = property(lambda self: self.root / "site")
    jobs = property(lambda self: self.root / "jobs")  # claims, failures, logs and the last grid
