"""The ``local`` executor: jobs in this process, or in ``--jobs N`` worker processes."""
from __future__ import annotations

import multiprocessing
import os
import signal
import sys
import threading
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from tqdm.auto import tqdm

from benchmark.core.specs import CheckpointSpec, RunSpec
from benchmark.core.workdir import Workdir
from benchmark.execution.executors.chunks import chunk_requests
from benchmark.execution.executors.options import ExecOptions
from benchmark.execution.executors.progress import POLL_S
from benchmark.execution.worker import WorkerReport, run_chunk, run_jobs
from benchmark.results.job import Job


class InProcess:
    def __init__(self, options: ExecOptions):
        self.options = options

    def run(self, pending: list[Job], spec: RunSpec, workdir: Workdir, checkpoints: dict[str, CheckpointSpec],
            log) -> WorkerReport:
        with tqdm(total=len(pending), desc="jobs", unit="job") as bar:
            return run_jobs(pending, spec, workdir, checkpoints, self.options.threads, on_job=lambda: bar.update(1),
                            debug=self.options.debug)


def visible_gpus(device: str) -> list[str]:
    """The GPUs this process may use, as CUDA_VISIBLE_DEVICES names them (none for --device cpu)."""
    if device == "cpu":
        return []
    import torch

    count = torch.cuda.device_count()
    named = [d for d in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if d.strip()]
    return named[:count] if named else [str(i) for i in range(count)]


class WorkerPool:
    """N spawned worker processes, each pinned to one GPU (round robin) when there are GPUs.

    Spawned, not forked: a forked child would inherit the parent's CUDA and thread-pool state.
    """

    def __init__(self, options: ExecOptions):
        self.options = options

    def run(self, pending: list[Job], spec: RunSpec, workdir: Workdir, checkpoints: dict[str, CheckpointSpec],
            log) -> WorkerReport:
        context = multiprocessing.get_context("spawn")
        slots = context.Queue()
        for gpu in _gpu_slots(visible_gpus(spec.device), self.options.jobs):
            slots.put(gpu)
        logs = workdir.jobs / "workers"
        logs.mkdir(parents=True, exist_ok=True)
        log(f"{self.options.jobs} worker processes; their output is in {logs}")
        requests = chunk_requests(pending, spec, workdir, self.options.threads)
        report = WorkerReport()
        pool = ProcessPoolExecutor(self.options.jobs, mp_context=context, initializer=_start_worker,
                                   initargs=(slots, str(logs)))
        try:
            with _sigint_ignored():  # workers start (on submit) ignoring it, and inherit that
                futures = [pool.submit(run_chunk, request) for request in requests]
            _collect(futures, pending, workdir, report, log)
        except BaseException:  # Ctrl-C, most often
            _stop(pool, workdir, log)
            raise
        pool.shutdown()
        report.raise_if_fatal()
        return report


def _gpu_slots(gpus: list[str], workers: int) -> list[str | None]:
    return [gpus[i % len(gpus)] if gpus else None for i in range(workers)]


def _collect(futures, pending: list[Job], workdir: Workdir, report: WorkerReport, log) -> None:
    from benchmark.execution.executors.progress import wait_with_progress

    def finished() -> bool:
        done, _ = wait(futures, timeout=POLL_S, return_when=FIRST_COMPLETED)
        return len(done) == len(futures)

    wait_with_progress(pending, workdir, finished, desc="jobs")
    for future in futures:
        try:
            report.merge(future.result())
        except BrokenProcessPool:
            log("a worker process died (killed, or out of memory); its unfinished jobs stay pending")
            return


@contextmanager
def _sigint_ignored() -> Iterator[None]:
    """SIGINT ignored while worker processes start: an ignored signal stays ignored across exec,
    so a Ctrl-C in the terminal, which reaches the whole process group, reaches only the
    parent, which stops the workers itself. (A Ctrl-C in these milliseconds is lost.)"""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def _stop(pool: ProcessPoolExecutor, workdir: Workdir, log) -> None:
    """End the workers now rather than after their chunks, which would run on unattended.

    SIGTERM ends a worker at once: the kernel drops its claims, and the temp file of a write it
    was in the middle of is swept here, so nothing partial is left for the next run.
    """
    from benchmark.execution.jobstate import sweep_partial_writes

    workers = list((getattr(pool, "_processes", None) or {}).values())
    for worker in workers:
        worker.terminate()
    for worker in workers:
        worker.join(timeout=30)
    pool.shutdown(wait=False, cancel_futures=True)
    sweep_partial_writes(workdir, log)


def _start_worker(slots, log_dir: str) -> None:
    """Ignore Ctrl-C (the parent's to handle), take a GPU before CUDA starts, and send this
    worker's output to its own log file."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    gpu = slots.get()
    if gpu is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = gpu
    handle = open(Path(log_dir) / f"worker-{os.getpid()}.log", "a", buffering=1, encoding="utf-8")
    os.dup2(handle.fileno(), 1)
    os.dup2(handle.fileno(), 2)
    sys.stdout = sys.stderr = handle
