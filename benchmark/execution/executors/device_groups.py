"""``--devices-per-job N`` on one machine: groups of N spawned processes, each group one
torch.distributed world that trains one job at a time on N devices.

Every group is handed the whole pending grid; its rank 0 claims jobs as any worker does, so
``--jobs J`` groups share the grid without a scheduler, and a group whose rank 0 ends takes
its other ranks with it. Ranks find each other on 127.0.0.1 at a free port (torch's
environment variables, as ``torchrun`` sets them); on a GPU machine rank r of group g sees
only GPU g*N + r.
"""
from __future__ import annotations

import multiprocessing
import os
import queue
import socket
from pathlib import Path

from benchmark.core.errors import ConfigError
from benchmark.core.specs import CheckpointSpec, RunSpec
from benchmark.core.workdir import Workdir
from benchmark.execution.executors.chunks import chunk_requests
from benchmark.execution.executors.local import (
    become_worker,
    end_processes,
    run_chunk_until_stopped,
    sigint_ignored,
    visible_gpus,
)
from benchmark.execution.executors.options import ExecOptions
from benchmark.execution.executors.progress import wait_with_progress
from benchmark.execution.worker import ChunkRequest, WorkerReport
from benchmark.results.job import Job


class DeviceGroups:
    def __init__(self, options: ExecOptions):
        self.options = options

    def run(self, pending: list[Job], spec: RunSpec, workdir: Workdir, checkpoints: dict[str, CheckpointSpec],
            log) -> WorkerReport:
        size, groups = self.options.devices_per_job, self.options.jobs
        gpus = visible_gpus(spec.device)
        if gpus and len(gpus) < size:
            raise ConfigError(f"--devices-per-job {size} needs {size} GPUs; {len(gpus)} visible")
        logs = workdir.jobs / "workers"
        logs.mkdir(parents=True, exist_ok=True)
        log(f"{groups} group(s) of {size} processes, one job per group at a time; their output is in {logs}")
        request = chunk_requests(pending, spec, workdir, self.options, whole=True)[0]
        context = multiprocessing.get_context("spawn")
        reports, ranks = context.Queue(), []
        try:
            with sigint_ignored():  # the children inherit the ignored SIGINT: Ctrl-C is the parent's to handle
                for group in range(groups):
                    port = _free_port()
                    for rank in range(size):
                        gpu = gpus[(group * size + rank) % len(gpus)] if gpus else None
                        env = _rank_environment(rank, size, port, gpu)
                        ranks.append(context.Process(target=_run_rank, args=(request, env, str(logs), reports),
                                                     name=f"ctbench-group{group}-rank{rank}"))
                        ranks[-1].start()
            report = WorkerReport()
            leaders = ranks[::size]

            def finished() -> bool:
                _drain(reports, report)
                for leader, group in zip(leaders, _groups(ranks, size)):
                    if not leader.is_alive():  # its followers have nothing left to do, or are stuck
                        end_processes([r for r in group[1:] if r.is_alive()], workdir, lambda _: None)
                return not any(r.is_alive() for r in ranks)

            wait_with_progress(pending, workdir, finished, desc="jobs")
            _drain(reports, report)
        except BaseException:  # Ctrl-C or SIGTERM, most often
            end_processes([r for r in ranks if r.is_alive()], workdir, log)
            raise
        if any(leader.exitcode != 0 for leader in ranks[::size]):
            log("a group's rank 0 ended early (killed, or out of memory); its unfinished jobs stay pending")
        if report.stopped:
            log(report.stopped)
        report.raise_if_fatal()
        return report


def _groups(ranks: list, size: int) -> list[list]:
    return [ranks[i:i + size] for i in range(0, len(ranks), size)]


def _drain(reports, into: WorkerReport) -> None:
    while True:
        try:
            into.merge(reports.get_nowait())
        except queue.Empty:
            return


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _rank_environment(rank: int, size: int, port: int, gpu: str | None) -> dict[str, str]:
    env = {"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), "RANK": str(rank), "WORLD_SIZE": str(size),
           "LOCAL_RANK": str(rank), "LOCAL_WORLD_SIZE": str(size)}
    if gpu is not None:
        env["CUDA_VISIBLE_DEVICES"] = gpu
    return env


def _run_rank(request: ChunkRequest, env: dict[str, str], log_dir: str, reports) -> None:
    """One rank: its place in the world and its GPU before CUDA starts, its output to its own log;
    rank 0 sends back the report. SIGTERM ends it once training state is saved."""
    os.environ.update(env)
    become_worker(Path(log_dir) / f"worker-{os.getpid()}-rank{env['RANK']}.log")
    report = run_chunk_until_stopped(request)
    if env["RANK"] == "0":
        reports.put(report)
