"""How the pending jobs are cut into units of work for worker processes and array tasks."""
from __future__ import annotations

from itertools import groupby

from typing import Optional

from ..grid import Job
from ..plugins import given_include_paths
from ..profiles import PROFILES
from ..protocols import PROTOCOLS
from ..specs import RunSpec
from ..workdir import Workdir
from ..worker import ChunkRequest


def chunks(jobs: list[Job]) -> list[list[Job]]:
    """One chunk per task x checkpoint x protocol, so a worker reads each task's data and
    each checkpoint's features once. Training protocols are cut further to the profile's
    ``jobs_per_chunk`` (one ResNet-50 finetune per SLURM task for ``paper``); feature-based
    ones never are: after the shared extraction each of their jobs takes seconds.
    """
    key = lambda j: (j.task, j.checkpoint, j.protocol)  # noqa: E731
    out = []
    for (_, _, protocol), group in groupby(sorted(jobs, key=lambda j: (key(j), j)), key=key):
        group = list(group)
        size = len(group) if PROTOCOLS.get(protocol).uses_features else PROFILES[group[0].profile].jobs_per_chunk
        out += [group[i:i + size] for i in range(0, len(group), size)]
    return out


def chunk_requests(pending: list[Job], spec: RunSpec, workdir: Workdir, threads: Optional[int]) -> list[ChunkRequest]:
    """One picklable worker call per chunk, as the pool and submitit both send them."""
    include = tuple(str(p) for p in given_include_paths())
    return [ChunkRequest(spec.model_dump(mode="json"), str(workdir.root), tuple(j.job_id for j in chunk), include,
                         threads) for chunk in chunks(pending)]
