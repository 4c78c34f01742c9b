"""The ``local`` executor: jobs in this process, or in ``--jobs N`` worker processes."""
from __future__ import annotations

import multiprocessing
import os
import sys
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

from tqdm.auto import tqdm

from ..grid import Job
from ..specs import CheckpointSpec, RunSpec
from ..workdir import Workdir
from ..worker import WorkerReport, run_chunk, run_jobs
from . import ExecOptions
from .chunks import chunk_requests
from .progress import POLL_S


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
        with ProcessPoolExecutor(self.options.jobs, mp_context=context, initializer=_start_worker,
                                 initargs=(slots, str(logs))) as pool:
            futures = [pool.submit(run_chunk, request) for request in requests]
            _collect(futures, pending, workdir, report, log)
        report.raise_if_fatal()
        return report


def _gpu_slots(gpus: list[str], workers: int) -> list[str | None]:
    return [gpus[i % len(gpus)] if gpus else None for i in range(workers)]


def _collect(futures, pending: list[Job], workdir: Workdir, report: WorkerReport, log) -> None:
    from .progress import wait_with_progress

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


def _start_worker(slots, log_dir: str) -> None:
    """Take a GPU before CUDA starts, and send this worker's output to its own log file."""
    gpu = slots.get()
    if gpu is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = gpu
    handle = open(Path(log_dir) / f"worker-{os.getpid()}.log", "a", buffering=1, encoding="utf-8")
    os.dup2(handle.fileno(), 1)
    os.dup2(handle.fileno(), 2)
    sys.stdout = sys.stderr = handle
