"""The ``slurm`` and ``submitit-local`` executors: the grid's chunks as submitit jobs.

``slurm`` submits one job array through submitit's AutoExecutor; ``submitit-local`` runs
the same pickled ``run_chunk`` calls through submitit's LocalExecutor, which is how the
SLURM path is tested without a cluster. LocalExecutor starts every job it is given at
once, so this module keeps at most ``--jobs`` of them running (SLURM's array limit does
that on a cluster).
"""
from __future__ import annotations

import shutil
from pathlib import Path

from benchmark.core.errors import ConfigError
from benchmark.core.specs import CheckpointSpec, RunSpec
from benchmark.core.workdir import Workdir
from benchmark.execution.executors.chunks import chunk_requests
from benchmark.execution.executors.local import visible_gpus
from benchmark.execution.executors.options import ExecOptions, SlurmOptions
from benchmark.execution.executors.progress import wait_with_progress
from benchmark.execution.worker import ChunkRequest, WorkerReport, run_chunk
from benchmark.results.job import Job

LOCAL_TIMEOUT_MIN = 7 * 24 * 60  # submitit's local default (2 minutes) would kill a real job


def slurm_parameters(options: SlurmOptions) -> dict:
    """AutoExecutor parameters; ``extra`` becomes ``#SBATCH --KEY=VALUE`` lines."""
    params = {"name": "ctbench", "timeout_min": options.time, "nodes": 1, "tasks_per_node": 1,
              "gpus_per_node": options.gpus_per_job, "cpus_per_task": options.cpus_per_job,
              "slurm_array_parallelism": options.array_parallelism}
    if options.partition:
        params["slurm_partition"] = options.partition
    if options.account:
        params["slurm_account"] = options.account
    if options.extra:
        params["slurm_additional_parameters"] = dict(options.extra)
    return params


class SubmititExecutor:
    def __init__(self, options: ExecOptions):
        self.options = options
        self.cluster = "slurm" if options.executor == "slurm" else "local"

    def run(self, pending: list[Job], spec: RunSpec, workdir: Workdir, checkpoints: dict[str, CheckpointSpec],
            log) -> WorkerReport:
        folder = workdir.jobs / "submitit"
        requests = chunk_requests(pending, spec, workdir, self.options.threads)
        if self.cluster == "slurm":
            jobs = self._submit_array(folder, requests, log)
            if not self.options.wait:
                return WorkerReport(submitted=[j.job_id for j in jobs])
            try:
                wait_with_progress(pending, workdir, lambda: all(j.done() for j in jobs), desc="jobs (slurm)")
            except KeyboardInterrupt:
                log("the array keeps running on the cluster; `ctbench status` follows it")
                raise
        else:
            jobs = self._run_local(folder, requests, pending, spec, workdir, log)
        return _reports(jobs, log)

    def _submit_array(self, folder: Path, requests: list[ChunkRequest], log) -> list:
        import submitit

        missing = [tool for tool in ("sbatch", "srun") if shutil.which(tool) is None]
        if missing:
            raise ConfigError(f"--executor slurm needs SLURM's {' and '.join(missing)} on PATH, which this machine "
                              "lacks; submit from a cluster login node, or try the same path here with "
                              "--executor submitit-local")
        executor = submitit.AutoExecutor(folder=folder / "%j", cluster="slurm")
        executor.update_parameters(**slurm_parameters(self.options.slurm))
        jobs = executor.map_array(run_chunk, requests)
        log(f"submitted {len(requests)} array task(s) as SLURM job {jobs[0].job_id.split('_')[0]}; logs in {folder}")
        return jobs

    def _run_local(self, folder: Path, requests: list[ChunkRequest], pending: list[Job], spec: RunSpec,
                   workdir: Workdir, log) -> list:
        import submitit

        executor = submitit.LocalExecutor(folder=folder / "%j")
        gpus, queue, running, submitted = visible_gpus(spec.device), list(requests), {}, []
        log(f"{len(requests)} submitit-local task(s), {self.options.jobs} at a time; logs in {folder}")

        def step() -> bool:
            for slot in [s for s, job in running.items() if job.done()]:
                del running[slot]
            for slot in range(self.options.jobs):
                if queue and slot not in running:
                    executor.update_parameters(timeout_min=LOCAL_TIMEOUT_MIN, gpus_per_node=1 if gpus else 0,
                                               visible_gpus=_pinned(gpus, slot))
                    running[slot] = executor.submit(run_chunk, queue.pop(0))
                    submitted.append(running[slot])
            return not queue and not running

        wait_with_progress(pending, workdir, step, desc="jobs (submitit-local)")
        return submitted


def _pinned(gpus: list[str], slot: int) -> tuple[int, ...]:
    """LocalExecutor takes GPU indices; devices named by UUID are left to CUDA_VISIBLE_DEVICES."""
    gpu = gpus[slot % len(gpus)] if gpus else ""
    return (int(gpu),) if gpu.isdigit() else ()


def _reports(jobs: list, log) -> WorkerReport:
    """Each task's report; a task that died outside the worker loop is named with its log."""
    import submitit

    report = WorkerReport()
    for job in jobs:
        try:
            report.merge(job.result())
        except submitit.core.utils.UncompletedJobError as exc:
            first = next((line for line in str(exc).splitlines() if line.strip()), "no output")
            log(f"submitit task {job.job_id} ended without finishing ({first}); its log: {job.paths.stderr}")
    report.raise_if_fatal()
    return report
