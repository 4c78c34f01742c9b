"""What the grid's workers share besides results: who runs which job, which failed and why.

``WORKDIR/jobs`` holds, per job id:
- ``locks/<id>``: the claim. A worker runs a job only while holding its lock, so two workers
  (two processes, two nodes, two ``ctbench run``) never run one job twice, and a killed
  worker's claim vanishes with it;
- ``running/<id>.json``: who holds the claim (host, pid, since), for ``ctbench status``;
- ``failed/<id>.json``: the error, the traceback and the tail of the job's log;
- ``logs/<id>.log``: every attempt's log, appended;
- ``state/<id>.pt``: a training job's resumable state, with ``<id>.pt.json`` saying where it is.
``grid.json`` is the grid of the last ``ctbench run``, which ``status`` counts against.
"""
from __future__ import annotations

import json
import os
import socket
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

from benchmark.core.atomic import sweep_stale_temp_folders, sweep_stale_temps, write_json
from benchmark.core.locks import is_held, try_acquire
from benchmark.core.workdir import Workdir
from benchmark.results.job import Job

LOG_TAIL_LINES = 40


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")


def worker_id() -> dict:
    return {"host": socket.gethostname(), "pid": os.getpid()}


class JobState:
    def __init__(self, root: Path):
        self.root = Path(root)

    def _path(self, kind: str, job_id: str, suffix: str = ".json") -> Path:
        return self.root / kind / f"{job_id}{suffix}"

    def log_path(self, job_id: str) -> Path:
        return self._path("logs", job_id, ".log")

    @contextmanager
    def claim(self, job_id: str, wait: bool = False) -> Iterator[bool]:
        """Yields whether this process now holds the job; with ``wait``, blocks until it does."""
        lock = try_acquire(self._path("locks", job_id, ""), wait)
        if lock is None:
            yield False
            return
        marker = self._path("running", job_id)
        try:
            write_json(marker, {**worker_id(), "since": _now()})
            yield True
        finally:
            marker.unlink(missing_ok=True)
            lock.release()

    def running(self) -> dict[str, dict]:
        """Markers whose claim is held; a marker left by a killed worker is not running."""
        found = {}
        for marker in sorted((self.root / "running").glob("*.json")):
            job_id = marker.name[: -len(".json")]
            if is_held(self._path("locks", job_id, "")):
                found[job_id] = _read(marker)
        return found

    def clear_dead_markers(self) -> list[str]:
        """Remove the running markers that killed workers left; returns their job ids.

        ``running`` already skips them; removing them keeps ``jobs/running`` a true list. A
        marker goes only under its job's claim, so a worker claiming the job now keeps its own.
        """
        removed = []
        for marker in sorted((self.root / "running").glob("*.json")):
            job_id = marker.name[: -len(".json")]
            claim = try_acquire(self._path("locks", job_id, ""))
            if claim is not None:
                marker.unlink(missing_ok=True)
                claim.release()
                removed.append(job_id)
        return removed

    def record_failure(self, job: Job, error: str, trace: str) -> Path:
        path = self._path("failed", job.job_id)
        write_json(path, {"job": job.as_dict(), "error": error, "traceback": trace, "log": str(self.log_path(job.job_id)),
                          "log_tail": self.log_tail(job.job_id), **worker_id(), "at": _now()})
        return path

    def clear_failure(self, job_id: str) -> None:
        self._path("failed", job_id).unlink(missing_ok=True)

    def failed_ids(self) -> set[str]:
        return {p.name[: -len(".json")] for p in (self.root / "failed").glob("*.json")}

    def failures(self) -> dict[str, dict]:
        return {p.name[: -len(".json")]: _read(p) for p in sorted((self.root / "failed").glob("*.json"))}

    def log_tail(self, job_id: str, lines: int = LOG_TAIL_LINES) -> list[str]:
        path = self.log_path(job_id)
        return path.read_text(errors="replace").splitlines()[-lines:] if path.is_file() else []

    def resumable(self) -> dict[str, dict]:
        """Training jobs with a saved state (``state/<id>.pt``): where a rerun picks up (epoch, step, when)."""
        return {p.name[: -len(".pt.json")]: _read(p) for p in sorted((self.root / "state").glob("*.pt.json"))
                if p.with_name(p.name[: -len(".json")]).is_file()}

    def write_grid(self, jobs: list[Job], profile: str) -> None:
        write_json(self.root / "grid.json", {"profile": profile, "jobs": [j.as_dict() for j in jobs]})

    def read_grid(self) -> list[dict] | None:
        path = self.root / "grid.json"
        return _read(path).get("jobs") if path.is_file() else None


def _read(path: Path) -> dict:
    """A state file another worker removed or is replacing reads as empty: state is advisory."""
    try:
        payload = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return {}
    return payload if isinstance(payload, dict) else {}


def sweep_partial_writes(workdir: Workdir, log: Callable[[str], None]) -> None:
    """Remove the temp files and temp folders of writers killed mid-write (SIGKILL, out of memory,
    a lost node), which nothing else would ever remove, and their running markers. Only orphans
    go: a live writer's temp file or folder and a live worker's marker, this run's or a
    concurrent run's, are locked."""
    removed = sweep_stale_temps(_written_through_atomic(workdir))
    folders = sweep_stale_temp_folders(_temp_folder_parents(workdir))
    JobState(workdir.jobs).clear_dead_markers()
    parts = [f"{n} partial {what}(s)" for n, what in ((len(removed), "file"), (len(folders), "folder")) if n]
    if parts:
        log(f"removed {' and '.join(parts)} that a killed run left")


def _written_through_atomic(workdir: Workdir) -> list[Path]:
    """The workdir less the datasets (large trees, written otherwise); in the cache, the features and
    the file hashes are written atomically, and so is a migrated slice cache's meta.json (slice
    cache folders themselves are renamed into place: ``_temp_folder_parents``)."""
    if not workdir.root.is_dir():
        return []
    skip = {workdir.data, workdir.root / "cache"}
    cache = [workdir.features, workdir.root / "cache" / "file-hashes", workdir.slices]
    return [p for p in sorted(workdir.root.iterdir()) if p.is_dir() and p not in skip] + cache


def _temp_folder_parents(workdir: Workdir) -> list[Path]:
    """Where whole folders are filled beside their final name: the generated datasets (in the data
    folder) and each task's slice caches. Only these folders are listed, not their trees."""
    tasks = sorted(p for p in workdir.slices.iterdir() if p.is_dir()) if workdir.slices.is_dir() else []
    return [workdir.data, *tasks]

