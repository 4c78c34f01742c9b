"""The ``local`` executor: jobs in this process, or in ``--jobs N`` worker processes."""
from __future__ import annotations

import multiprocessing
import os
import signal
import sys
import threading
import time
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from tqdm.auto import tqdm

from benchmark.core.errors import EXIT_TERMINATED
from benchmark.core.interrupts import Terminated, handle_sigterm
from benchmark.core.specs import CheckpointSpec, RunSpec
from benchmark.core.workdir import Workdir
from benchmark.execution.executors.chunks import chunk_requests, runner_settings
from benchmark.execution.executors.options import ExecOptions
from benchmark.execution.executors.progress import POLL_S
from benchmark.execution.worker import ChunkRequest, WorkerReport, run_chunk, run_jobs
from benchmark.results.job import Job

STOP_GRACE_S = 8.0  # a stopped worker's time to reach a step boundary and save its training state


class InProcess:
    def __init__(self, options: ExecOptions):
        self.options = options

    def run(self, pending: list[Job], spec: RunSpec, workdir: Workdir, checkpoints: dict[str, CheckpointSpec],
            log) -> WorkerReport:
        with tqdm(total=len(pending), desc="jobs", unit="job") as bar:
            return run_jobs(pending, spec, workdir, checkpoints, self.options.threads, on_job=lambda: bar.update(1),
                            debug=self.options.debug, settings=runner_settings(self.options))


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
        requests = chunk_requests(pending, spec, workdir, self.options)
        report = WorkerReport()
        pool = ProcessPoolExecutor(self.options.jobs, mp_context=context, initializer=_start_worker,
                                   initargs=(slots, str(logs)))
        try:
            with sigint_ignored():  # workers start (on submit) ignoring it, and inherit that
                futures = [pool.submit(run_chunk_until_stopped, request) for request in requests]
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
def sigint_ignored() -> Iterator[None]:
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
    """End the workers now rather than after their chunks, which would run on unattended."""
    end_processes(list((getattr(pool, "_processes", None) or {}).values()), workdir, log)
    pool.shutdown(wait=False, cancel_futures=True)


def end_processes(workers: list, workdir: Workdir, log) -> None:
    """SIGTERM: a worker in training saves its state at the next step boundary and exits; one that
    has not exited within ``STOP_GRACE_S`` is killed (its last saved state stays). The kernel drops
    their claims, and the temp file of a write one was in the middle of is swept here, so nothing
    partial is left for the next run."""
    from benchmark.execution.jobstate import sweep_partial_writes

    for worker in workers:
        worker.terminate()
    deadline = time.monotonic() + STOP_GRACE_S
    for worker in workers:
        worker.join(timeout=max(0.0, deadline - time.monotonic()))
    for worker in [w for w in workers if w.is_alive()]:
        worker.kill()
        worker.join(timeout=5)
    sweep_partial_writes(workdir, log)


def run_chunk_until_stopped(request: ChunkRequest) -> WorkerReport:
    """A worker process's chunk; SIGTERM (the parent stopping it) ends the process once training
    state is saved, without a traceback: the parent is already on its way out."""
    handle_sigterm()  # inside a chunk: stop at a safe point, with training state saved
    try:
        return run_chunk(request)
    except Terminated:
        exit_now(EXIT_TERMINATED)
    finally:
        signal.signal(signal.SIGTERM, _exit_quietly)


def _exit_quietly(signum, frame) -> None:
    """SIGTERM to a worker between chunks (idle in its pool's queue): nothing to save, so exit at
    once; raising there would print a traceback from the pool's own loop."""
    exit_now(EXIT_TERMINATED)


def exit_now(code: int) -> None:
    """End a worker process without returning to its pool's loop (which would wait for more work),
    after the exit handlers (multiprocessing's release the semaphores this process made; skipping
    them makes the resource tracker warn of leaks)."""
    import atexit

    sys.stdout.flush()
    atexit._run_exitfuncs()
    os._exit(code)


def _start_worker(slots, log_dir: str) -> None:
    """Take a GPU before CUDA starts, then become a worker (see ``become_worker``)."""
    gpu = slots.get()
    if gpu is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = gpu
    become_worker(Path(log_dir) / f"worker-{os.getpid()}.log")


def become_worker(log_file: Path) -> None:
    """Ignore Ctrl-C (the parent's to handle), exit on SIGTERM (at a safe point while a chunk runs),
    and send this process's output to its own log file."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, _exit_quietly)  # ``run_chunk_until_stopped`` raises it inside a chunk
    handle = open(log_file, "a", buffering=1, encoding="utf-8")
    os.dup2(handle.fileno(), 1)
    os.dup2(handle.fileno(), 2)
    sys.stdout = sys.stderr = handle
