"""The ``slurm`` and ``submitit-local`` executors: the grid's chunks as submitit jobs.

``slurm`` submits one job array through submitit's AutoExecutor; ``submitit-local`` runs
the same pickled ``run_chunk`` calls through submitit's LocalExecutor, which is how the
SLURM path is tested without a cluster. LocalExecutor starts every job it is given at
once, so this module keeps at most ``--jobs`` of them running (SLURM's array limit does
that on a cluster).

Preemption and time limits: the submitted callable is checkpointable (``ResumableChunk``).
submitit sends the task a signal (USR2) ahead of its time limit or on preemption; a training
job holds it back to its next step boundary, saves its state, and submitit requeues the task,
which skips finished jobs and resumes the interrupted one from that state. An array task's
time may therefore be shorter than a job (docs/running-on-a-cluster.md).
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


class ResumableChunk:
    """``run_chunk`` as submitit's checkpointable callable: on a time-out or preemption signal the
    same chunk is requeued (its finished jobs are skipped; training resumes from its saved state)."""

    def __call__(self, request: ChunkRequest) -> WorkerReport:
        return run_chunk(request)

    def checkpoint(self, request: ChunkRequest):
        import submitit

        return submitit.helpers.DelayedSubmission(ResumableChunk(), request)


def slurm_parameters(options: SlurmOptions, tasks_per_node: int = 1) -> dict:
    """AutoExecutor parameters; ``extra`` becomes ``#SBATCH --KEY=VALUE`` lines. ``tasks_per_node``:
    the ranks of one distributed job (one GPU each)."""
    params = {"name": "ctbench", "timeout_min": options.time, "nodes": 1, "tasks_per_node": tasks_per_node,
              "gpus_per_node": max(options.gpus_per_job, tasks_per_node) if options.gpus_per_job else 0,
              "cpus_per_task": options.cpus_per_job,
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
        requests = chunk_requests(pending, spec, workdir, self.options)
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
        executor.update_parameters(**slurm_parameters(self.options.slurm, self.options.devices_per_job))
        jobs = executor.map_array(ResumableChunk(), requests)
        log(f"submitted {len(requests)} array task(s) as SLURM job {jobs[0].job_id.split('_')[0]}; logs in {folder}")
        return jobs

    def _run_local(self, folder: Path, requests: list[ChunkRequest], pending: list[Job], spec: RunSpec,
                   workdir: Workdir, log) -> list:
        import submitit

        executor = submitit.LocalExecutor(folder=folder / "%j")
        gpus, queue, running, submitted = visible_gpus(spec.device), list(requests), {}, []
        size = self.options.devices_per_job
        log(f"{len(requests)} submitit-local task(s), {self.options.jobs} at a time; logs in {folder}")

        def step() -> bool:
            for slot in [s for s, job in running.items() if job.done()]:
                del running[slot]
            for slot in range(self.options.jobs):
                if queue and slot not in running:
                    executor.update_parameters(timeout_min=LOCAL_TIMEOUT_MIN, gpus_per_node=size if gpus else 0,
                                               tasks_per_node=size, visible_gpus=_pinned(gpus, slot, size))
                    running[slot] = executor.submit(ResumableChunk(), queue.pop(0))
                    submitted.append(running[slot])
            return not queue and not running

        wait_with_progress(pending, workdir, step, desc="jobs (submitit-local)")
        return submitted


def _pinned(gpus: list[str], slot: int, size: int = 1) -> tuple[int, ...]:
    """LocalExecutor takes GPU indices (``size`` per task); devices named by UUID are left to
    CUDA_VISIBLE_DEVICES."""
    picked = [gpus[(slot * size + i) % len(gpus)] for i in range(size)] if gpus else []
    return tuple(int(gpu) for gpu in picked) if picked and all(g.isdigit() for g in picked) else ()


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
