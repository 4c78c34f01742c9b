"""Executors hand the pending jobs of a grid to the engine that runs them.

- ``local``: this process (``--jobs 1``) or a pool of N worker processes, one GPU each;
- ``submitit-local``: submitit's LocalExecutor, the SLURM code path in local subprocesses;
- ``slurm``: submitit's AutoExecutor, one job array on the cluster.

All of them run the same worker loop (``benchmark.worker``) over the same job ids and
store, so they compute the same numbers; none schedules anything itself beyond chunking.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional, Protocol

from ..errors import ConfigError
from ..grid import Job
from ..specs import CheckpointSpec, RunSpec
from ..workdir import Workdir
from ..worker import WorkerReport

EXECUTORS = ("local", "submitit-local", "slurm")


@dataclass(frozen=True)
class SlurmOptions:
    """One field per ``--slurm-<field>`` flag (underscores as dashes)."""
    partition: Optional[str] = None
    time: int = 240  # minutes (--slurm-time takes sbatch's formats)
    gpus_per_job: int = 1
    cpus_per_job: int = 8
    array_parallelism: int = 32
    account: Optional[str] = None
    extra: dict[str, str] = field(default_factory=dict)  # more sbatch options, e.g. mem=64G, qos=high


@dataclass(frozen=True)
class ExecOptions:
    executor: str = "local"
    jobs: int = 1  # worker processes of local and submitit-local
    threads: Optional[int] = 1  # CPU threads per job (None: torch's default)
    retry_failed: bool = False
    wait: bool = True
    slurm: SlurmOptions = field(default_factory=SlurmOptions)
    debug: bool = False


class Executor(Protocol):
    def run(self, pending: list[Job], spec: RunSpec, workdir: Workdir, checkpoints: dict[str, CheckpointSpec],
            log) -> WorkerReport: ...


def executor_for(options: ExecOptions) -> Executor:
    if options.executor not in EXECUTORS:
        raise ConfigError(f"unknown executor {options.executor!r}; choose one of {', '.join(EXECUTORS)}")
    if options.executor == "local":
        from .local import InProcess, WorkerPool

        return InProcess(options) if options.jobs == 1 else WorkerPool(options)
    from .submitit_executor import SubmititExecutor

    return SubmititExecutor(options)
