"""How the pending jobs are cut into units of work for worker processes and array tasks."""
from __future__ import annotations

from itertools import groupby

from benchmark.catalog.registries import given_include_paths
from benchmark.core.specs import RunSpec
from benchmark.core.workdir import Workdir
from benchmark.evaluation.profiles import PROFILES
from benchmark.evaluation.protocols import PROTOCOLS
from benchmark.execution.executors.options import ExecOptions
from benchmark.execution.job_runner import RunnerSettings
from benchmark.execution.worker import ChunkRequest
from benchmark.results.job import Job


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


def chunk_requests(pending: list[Job], spec: RunSpec, workdir: Workdir, options: ExecOptions,
                   whole: bool = False) -> list[ChunkRequest]:
    """One picklable worker call per chunk, as the pool and submitit both send them; ``whole``:
    one call for every pending job (groups of ranks that share the grid by claiming jobs)."""
    include = tuple(str(p) for p in given_include_paths())
    groups = [pending] if whole else chunks(pending)
    return [ChunkRequest(spec.model_dump(mode="json"), str(workdir.root), tuple(j.job_id for j in chunk), include,
                         options.threads, runner_settings(options)) for chunk in groups]


def runner_settings(options: ExecOptions) -> RunnerSettings:
    return RunnerSettings(checkpoint_every_s=options.checkpoint_every_min * 60, micro_batch=options.micro_batch)
