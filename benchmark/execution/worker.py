"""The loop every executor runs in its worker: claim a job, run it, record what happened.

One loop for all executors is what makes them agree: in process, in a local worker pool
and in a SLURM array task, a job runs only under its claim, is skipped once its result
exists, and leaves either a whole result or a failure record with its traceback and log.
"""
from __future__ import annotations

import logging
import sys
import traceback
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator, Optional

from benchmark.core.atomic import is_disk_full
from benchmark.core.errors import CTBenchError
from benchmark.core.specs import CheckpointSpec, RunSpec
from benchmark.core.workdir import Workdir
from benchmark.evaluation import distributed
from benchmark.evaluation.accel import cpu_threads
from benchmark.evaluation.protocols import PROTOCOLS
from benchmark.evaluation.protocols.trainer import FollowerFinished
from benchmark.execution.grid import plan
from benchmark.execution.job_runner import JobRunner, RunnerSettings
from benchmark.execution.jobstate import JobState, worker_id
from benchmark.results.job import Job

log = logging.getLogger(__name__)


@dataclass
class WorkerReport:
    ran: list[str] = field(default_factory=list)  # job ids finished here
    failed: dict[str, str] = field(default_factory=dict)  # job id -> one-line error
    by_others: list[str] = field(default_factory=list)  # finished by another worker first
    fatal: Optional[tuple[int, str]] = None  # bad input (exit code, message): the worker stopped
    stopped: Optional[str] = None  # why a distributed group stopped before its share was done
    submitted: list[str] = field(default_factory=list)  # cluster job ids, when ctbench did not wait

    def raise_if_fatal(self) -> None:
        """A worker's bad-input error becomes the parent's, with its exit code."""
        if self.fatal:
            error = CTBenchError(self.fatal[1])
            error.exit_code = self.fatal[0]
            raise error

    def merge(self, other: "WorkerReport") -> None:
        self.ran += other.ran
        self.failed.update(other.failed)
        self.by_others += other.by_others
        self.fatal = self.fatal or other.fatal
        self.stopped = self.stopped or other.stopped


def run_jobs(jobs: list[Job], spec: RunSpec, workdir: Workdir, checkpoints: dict[str, CheckpointSpec],
             threads: Optional[int] = None, on_job: Callable[[], None] = lambda: None,
             debug: bool = False, settings: RunnerSettings | None = None) -> WorkerReport:
    """Run every job nobody else has finished, in task then checkpoint order.

    A job another worker holds is left for later; once this worker's own share is done it
    waits for those claims, and runs any whose holder died without a result. In a distributed
    group only rank 0 claims: it names each training job to the other ranks, which train it
    with it (``_follow``), and ends the group when its share is done.
    """
    runner = JobRunner(spec, workdir, checkpoints, settings)
    with cpu_threads(threads if runner.accel.device.type == "cpu" else None):
        if not runner.world.is_main:
            return _follow(jobs, runner)
        return _lead(jobs, runner, JobState(workdir.jobs), on_job, debug)


def _lead(jobs: list[Job], runner: JobRunner, state: JobState, on_job: Callable[[], None],
          debug: bool) -> WorkerReport:
    """Rank 0 (or a lone worker): claim and run jobs, the deferred ones last."""
    report, deferred = WorkerReport(), []
    for job in sorted(jobs, key=lambda j: (j.task, j.checkpoint, j)):
        if not _claim_and_run(job, runner, state, report, wait=False, debug=debug):
            deferred.append(job)
            continue
        on_job()
        if report.stopped:
            return report
    for job in deferred:
        _claim_and_run(job, runner, state, report, wait=True, debug=debug)
        on_job()
        if report.stopped:
            return report
    if runner.world.distributed:  # the followers' loop ends (after an error they are ended by their launcher)
        distributed.broadcast(None)
    return report


def _follow(jobs: list[Job], runner: JobRunner) -> WorkerReport:
    """A distributed group's other ranks: train each job rank 0 names, until it names none."""
    by_id = {job.job_id: job for job in jobs}
    while (job_id := distributed.broadcast(None)) is not None:
        job = by_id[job_id]
        runner.prepare(job)
        try:
            runner.run(job)
        except FollowerFinished:
            continue
    return WorkerReport()


def _claim_and_run(job: Job, runner: JobRunner, state: JobState, report: WorkerReport, wait: bool,
                   debug: bool) -> bool:
    """False when another worker holds the job and ``wait`` is off."""
    with state.claim(job.job_id, wait=wait) as mine:
        if not mine:
            return False
        if runner.store.is_done(job):
            report.by_others.append(job.job_id)
            return True
        runner.prepare(job)  # outside the failure capture: bad data stops the run, it is not a job's failure
        shared = runner.world.distributed and PROTOCOLS.get(job.protocol).trains
        if shared:
            distributed.broadcast(job.job_id)
        failure = _attempt(job, runner, state.log_path(job.job_id), debug)
        if failure is None:
            state.clear_failure(job.job_id)
            report.ran.append(job.job_id)
        else:
            state.record_failure(job, *failure)
            report.failed[job.job_id] = failure[0]
            if shared:  # the other ranks may be waiting in a collective that will never come: end the group
                report.stopped = f"distributed job {job.job_id} failed; its group stopped"
                distributed.shutdown()
    return True


def _attempt(job: Job, runner: JobRunner, log_path: Path, debug: bool) -> Optional[tuple[str, str]]:
    """Run the job under its own log; its error and traceback if it raised."""
    with job_log(log_path, job):
        try:
            runner.run(job)
        except Exception as exc:  # noqa: BLE001 - one job's bug or OOM must not stop the grid
            if debug or is_disk_full(exc):  # a full disk stops the run: the job is not to blame
                raise
            error = failure_line(job, exc)
            trace = traceback.format_exc()
            log.error("failed: %s\n%s", error, trace)
            return error, trace
    return None


def failure_line(job: Job, exc: BaseException) -> str:
    """One line naming the checkpoint, the task and the cause: a library's bare assertion (timm's
    "Input height (64) doesn't match model (224).") says nothing of which job hit it, and an empty
    one says nothing at all, so the place it was raised is added."""
    cause = " ".join(str(exc).split())
    if not isinstance(exc, CTBenchError):
        cause = f"{type(exc).__name__}: {cause}" if cause else type(exc).__name__
        frames = traceback.extract_tb(exc.__traceback__)
        if isinstance(exc, AssertionError) and frames:
            cause += f" (raised at {Path(frames[-1].filename).name}:{frames[-1].lineno})"
    return f"checkpoint {job.checkpoint} on task {job.task} ({job.protocol}): {cause}"


@contextmanager
def job_log(path: Path, job: Job) -> Iterator[None]:
    """ctbench's log records and Python warnings during one job go to the job's own log file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(path, mode="a", encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root, ours = logging.getLogger(), logging.getLogger("benchmark")
    level = ours.level
    root.addHandler(handler)
    ours.setLevel(logging.INFO)
    logging.captureWarnings(True)
    ident = worker_id()
    log.info("job %s on %s pid %s", job.job_id, ident["host"], ident["pid"])
    try:
        yield
    finally:
        logging.captureWarnings(False)
        ours.setLevel(level)
        root.removeHandler(handler)
        handler.close()


@dataclass(frozen=True)
class ChunkRequest:
    """What a worker process needs to run some of the grid: plain data, so it pickles anywhere."""
    spec: dict
    workdir: str
    job_ids: tuple[str, ...]
    include_paths: tuple[str, ...] = ()
    threads: Optional[int] = None
    settings: RunnerSettings = RunnerSettings()  # how often training state is saved, the micro-batch cap


def run_chunk(request: ChunkRequest) -> WorkerReport:
    """The entry point of a worker process (local pool or submitit): re-plan, then run the chunk.

    Re-planning resolves the checkpoints from the shared workdir (made once, by the parent),
    so a worker never receives a pickled model or path it cannot check. A process started as
    one rank of several (torch's environment variables, or a submitit job of several tasks)
    joins their process group first.
    """
    from benchmark.catalog.registries import set_include_paths

    set_include_paths([Path(p) for p in request.include_paths])
    spec, workdir = RunSpec.model_validate(request.spec), Workdir(Path(request.workdir))
    _export_submitit_world()
    distributed.init(spec.device)
    try:
        grid = plan(spec, workdir)
        wanted = set(request.job_ids)
        jobs = [j for j in grid.jobs if j.job_id in wanted]
        return run_jobs(jobs, spec, workdir, grid.checkpoints, request.threads, on_job=sys.stdout.flush,
                        settings=request.settings)
    except CTBenchError as exc:
        return WorkerReport(fatal=(exc.exit_code, str(exc)))
    finally:
        distributed.shutdown()


def _export_submitit_world() -> None:
    """In a submitit job of several tasks, torch's environment variables for its process group
    (each task sees only the GPU of its local rank)."""
    import submitit

    try:
        environment = submitit.JobEnvironment()
    except RuntimeError:  # "could not figure out which environment": not in a submitit job
        return
    if environment.num_tasks > 1:
        submitit.helpers.TorchDistributedEnvironment().export(set_cuda_visible_devices=True)
