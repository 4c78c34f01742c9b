"""``ctbench run``'s top layer: plan the grid, pick the jobs still to do, hand them to an executor.

Executors (``benchmark.execution.executors``) run the shared worker loop
(``benchmark.execution.worker``), which calls ``JobRunner`` for one job at a time. Jobs whose
result file exists are skipped before any data is touched, so a finished grid reruns in
seconds and an interrupted one resumes.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from benchmark.core.errors import JobError
from benchmark.core.specs import RunSpec
from benchmark.core.workdir import Workdir
from benchmark.evaluation.profiles import PROFILES
from benchmark.execution.executors import ExecOptions, executor_for
from benchmark.execution.grid import plan
from benchmark.execution.jobstate import JobState, sweep_partial_writes
from benchmark.execution.preflight import check_input_size
from benchmark.results.job import Job
from benchmark.results.store import ResultStore

Log = Callable[[str], None]


@dataclass
class RunSummary:
    jobs: list[Job]
    skipped: list[Job] = field(default_factory=list)  # done before this run
    done: list[Job] = field(default_factory=list)  # finished during this run, here or by a worker
    failed: dict[str, str] = field(default_factory=dict)  # job id -> one-line error, from this run
    held_back: dict[str, str] = field(default_factory=dict)  # failed in an earlier run and not retried
    not_run: list[Job] = field(default_factory=list)  # pending jobs no worker finished (one died)
    submitted: list[str] = field(default_factory=list)  # cluster job ids of a run that did not wait


def run(spec: RunSpec, workdir: Workdir, log: Log = print, options: ExecOptions | None = None) -> RunSummary:
    """Plan the grid, pick the jobs still to do, and hand them to the executor."""
    options = options or ExecOptions()
    sweep_partial_writes(workdir, log)
    grid = plan(spec, workdir)
    jobs = grid.jobs
    if grid.not_applicable:
        log("not evaluated, the protocol does not take the task's kind: "
            + ", ".join(f"{task} under {protocol}" for task, protocol in grid.not_applicable))
    store, state = ResultStore(workdir.results), JobState(workdir.jobs)
    state.write_grid(jobs, spec.profile)
    summary, pending = _select(jobs, store, state.failures(), options.retry_failed, log)
    if not pending:
        return summary
    check_input_size([grid.checkpoints[name] for name in sorted({j.checkpoint for j in pending})],
                     PROFILES[spec.profile].image_size, log)
    report = executor_for(options).run(pending, spec, workdir, grid.checkpoints, log)
    if report.submitted:
        summary.submitted = report.submitted
        return summary
    summary.failed = report.failed
    summary.done = [j for j in pending if store.is_done(j)]
    summary.not_run = [j for j in pending if not store.is_done(j) and j.job_id not in report.failed]
    log(f"ran {len(report.ran)} job(s)" + (f", {len(report.by_others)} finished by another process"
                                            if report.by_others else ""))
    return summary


def _select(jobs: list[Job], store: ResultStore, failures: dict[str, dict], retry_failed: bool,
            log: Log) -> tuple[RunSummary, list[Job]]:
    """Jobs without a result, less those that failed before, which only ``--retry-failed`` reruns."""
    summary = RunSummary(jobs=jobs, skipped=[j for j in jobs if store.is_done(j)])
    open_jobs = [j for j in jobs if not store.is_done(j)]
    retry = [j for j in open_jobs if j.job_id in failures]
    pending = retry if retry_failed else [j for j in open_jobs if j.job_id not in failures]
    if not retry_failed:
        summary.held_back = {j.job_id: failures[j.job_id].get("error", "") for j in retry}
    note = (f"{len(retry)} failed before, retried now" if retry_failed
            else f"{len(retry)} failed before (--retry-failed reruns them), {len(pending)} to run" if retry
            else f"{len(pending)} to run")
    log(f"{len(jobs)} jobs in the grid: {len(summary.skipped)} already done, {note}")
    return summary, pending


def require_success(summary: RunSummary) -> None:
    """One line for the user; ``ctbench status`` has each failure's traceback and log."""
    if summary.failed:
        first_id, first_error = next(iter(summary.failed.items()))
        raise JobError(f"{len(summary.failed)} job(s) failed; first: {first_id}: {first_error} "
                       "(`ctbench status` shows each error and log; --retry-failed reruns them)")
    if summary.held_back:
        first_id, first_error = next(iter(summary.held_back.items()))
        raise JobError(f"{len(summary.held_back)} job(s) failed in an earlier run and were not retried; first: "
                       f"{first_id}: {first_error} (rerun them with --retry-failed)")
    if summary.not_run:
        raise JobError(f"{len(summary.not_run)} job(s) did not finish (a worker ended early); "
                       "run the same command again to resume")
