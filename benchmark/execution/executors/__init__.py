"""Executors hand the pending jobs of a grid to the engine that runs them.

- ``local``: this process (``--jobs 1``) or a pool of N worker processes, one GPU each, or
  (``--devices-per-job N``) groups of N processes that train each job together (DDP);
- ``submitit-local``: submitit's LocalExecutor, the SLURM code path in local subprocesses;
- ``slurm``: submitit's AutoExecutor, one job array on the cluster.

All of them run the same worker loop (``benchmark.execution.worker``) over the same job ids and
store, so they compute the same numbers; none schedules anything itself beyond chunking.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from benchmark.core.errors import ConfigError
from benchmark.core.specs import CheckpointSpec, RunSpec
from benchmark.core.workdir import Workdir
from benchmark.execution.executors.options import EXECUTORS, ExecOptions, SlurmOptions

if TYPE_CHECKING:  # the worker imports torch; naming the executors' options must not
    from benchmark.execution.worker import WorkerReport
from benchmark.results.job import Job


class Executor(Protocol):
    def run(self, pending: list[Job], spec: RunSpec, workdir: Workdir, checkpoints: dict[str, CheckpointSpec],
            log) -> "WorkerReport": ...


def executor_for(options: ExecOptions) -> Executor:
    if options.executor not in EXECUTORS:
        raise ConfigError(f"unknown executor {options.executor!r}; choose one of {', '.join(EXECUTORS)}")
    if options.executor == "local" and options.devices_per_job > 1:
        from benchmark.execution.executors.device_groups import DeviceGroups

        return DeviceGroups(options)
    if options.executor == "local":
        from benchmark.execution.executors.local import InProcess, WorkerPool  # torch: only when jobs run

        return InProcess(options) if options.jobs == 1 else WorkerPool(options)
    from benchmark.execution.executors.submitit_executor import SubmititExecutor

    return SubmititExecutor(options)


__all__ = ["EXECUTORS", "ExecOptions", "Executor", "SlurmOptions", "executor_for"]
