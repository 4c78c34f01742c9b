"""Tools for the run fault tests: start `ctbench run` as a terminal would, hit it with signals
or a full disk, and look at what it left in the workdir."""
from __future__ import annotations

import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from tests.cli_helpers import REPO, results

# Provenance records the git commit; without a repository it is null, so an engineer committing
# while the tests run cannot make two runs' bytes differ.
ENV = {"GIT_DIR": os.devnull, "PYTHONUNBUFFERED": "1", "TQDM_DISABLE": "1"}


@dataclass
class Reference:
    """An uninterrupted run of the grid: its workdir and its timeline, in seconds from its start:
    when it had planned the grid (imports and the checkpoint done), how long each job took to
    store its result (the first one includes the slice cache and the features), and the rest
    (the site and the exit)."""
    workdir: Path
    seconds: float
    planned_s: float
    job_s: dict[str, float]
    tail_s: float

    def segments(self, done: set[str]) -> list[tuple[str, float]]:
        """What a restart with ``done`` stored has to go through, and how long each took here:
        the startup, each job still to do (in the order they run), then the site and the exit."""
        todo = [(job, seconds) for job, seconds in self.job_s.items() if job not in done]
        return [("startup", self.planned_s), *todo, ("site", self.tail_s)]

    def point(self, done: set[str], fraction: float) -> tuple[str, float]:
        """The point ``fraction`` of the way through a restart's timeline: its segment, and the
        seconds into it."""
        left = fraction * sum(seconds for _, seconds in self.segments(done))
        for name, seconds in self.segments(done):
            if left < seconds:
                return name, left
            left -= seconds
        return "site", self.tail_s


def timed_run(argv: list[str], workdir: Path) -> Reference:
    """Run the grid uninterrupted, watching the workdir for its timeline."""
    proc, started, planned, stored = start(argv), time.monotonic(), None, {}
    while proc.poll() is None:
        now = time.monotonic() - started
        planned = planned or ((workdir / "jobs" / "grid.json").is_file() and now)
        stored.update({job: now for job in results(workdir) if job not in stored})
        time.sleep(0.02)
    seconds = time.monotonic() - started
    out, err = proc.communicate()
    assert proc.returncode == 0, err
    ends = sorted(stored.items(), key=lambda item: item[1])
    starts = [planned] + [end for _, end in ends[:-1]]
    return Reference(workdir, seconds, planned, {job: end - begin for (job, end), begin in zip(ends, starts)},
                     seconds - ends[-1][1])


def states(workdir: Path) -> dict[str, str]:
    """Done, running, pending or failed per job, as `ctbench status` says (in process: no import cost)."""
    from benchmark.cli.status import job_states
    from benchmark.core.workdir import Workdir

    return job_states(Workdir(workdir))[1]


def failures(workdir: Path) -> dict[str, dict]:
    from benchmark.execution.jobstate import JobState

    return JobState(workdir / "jobs").failures()


def start(argv: list[str], preexec_fn: Callable[[], None] | None = None) -> subprocess.Popen:
    """`ctbench` in its own process group, as a shell starts a job: a signal to the group
    reaches the parent and every worker, as Ctrl-C in a terminal does.

    SIGINT starts at its default, as a terminal's foreground job gets it: a non-interactive shell
    that ran the test suite in the background (``make test &``) ignores SIGINT, every process
    below it would inherit that, and the CLI would never see the Ctrl-C these tests send."""
    def as_a_foreground_job() -> None:
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        if preexec_fn is not None:
            preexec_fn()

    return subprocess.Popen([sys.executable, "-m", "benchmark.cli", *argv], cwd=REPO, env={**os.environ, **ENV},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
                            preexec_fn=as_a_foreground_job)


def signal_group(proc: subprocess.Popen, signum: int) -> None:
    try:
        os.killpg(proc.pid, signum)
    except ProcessLookupError:
        pass


def kill_group(proc: subprocess.Popen) -> tuple[str, str]:
    """SIGKILL to the parent and its workers; their output, once the parent is reaped."""
    signal_group(proc, signal.SIGKILL)
    return proc.communicate(timeout=60)


def wait_for(condition: Callable[[], bool], proc: subprocess.Popen, timeout: float = 600) -> None:
    """Poll ``condition`` while the run lives; the run ending first is a failed precondition."""
    deadline = time.monotonic() + timeout
    while not condition():
        if proc.poll() is not None:
            raise AssertionError(f"the run ended (exit {proc.returncode}) before the moment the test waited for:\n"
                                 f"{proc.communicate()[1]}")
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.02)


def reached(workdir: Path, segment: str, started: float) -> Callable[[], bool]:
    """Whether a run started at ``started`` (a time.time()) has begun ``segment`` (see ``Reference``)."""
    def check() -> bool:
        if segment == "startup":
            return True
        if segment == "site":
            grid = workdir / "jobs" / "grid.json"
            return grid.is_file() and grid.stat().st_mtime >= started and len(results(workdir)) == len(
                json.loads(grid.read_text())["jobs"])
        return segment in running_jobs(workdir, since=started) or segment in results(workdir)
    return check


def wait_until(condition: Callable[[], bool], proc: subprocess.Popen) -> bool:
    """Poll ``condition``; False if the run ends first."""
    while not condition():
        if proc.poll() is not None:
            return False
        time.sleep(0.02)
    return True


def alive_after(proc: subprocess.Popen, seconds: float) -> bool:
    """Whether the run is still going ``seconds`` after it started."""
    try:
        proc.wait(timeout=seconds)
    except subprocess.TimeoutExpired:
        return True
    return False


def running_jobs(workdir: Path, since: float = 0.0) -> set[str]:
    """Jobs whose running marker (written at ``since``, a time.time(), or later) is there and whose
    result is not: mid-job, or killed mid-job."""
    markers = {p.name.removesuffix(".json") for p in (workdir / "jobs" / "running").glob("*.json")
               if p.stat().st_mtime >= since}
    return markers - set(results(workdir))


def temp_files(workdir: Path) -> list[Path]:
    """Partial writes: atomic writes' temp files anywhere, and the slice cache's temp folders."""
    slices = workdir / "cache" / "slices"
    temp_dirs = [p for p in slices.glob("*/.*") if p.is_dir()] if slices.is_dir() else []
    return sorted(workdir.rglob("*.tmp")) + temp_dirs


def file_ids(workdir: Path) -> dict[str, tuple[int, int]]:
    """Inode and mtime of every stored result and prediction file: a rewrite changes both."""
    return {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in (workdir / "results").rglob("*") if p.is_file()}


def site_bytes(workdir: Path) -> dict[str, bytes]:
    site = workdir / "site"
    return {str(p.relative_to(site)): p.read_bytes() for p in sorted(site.rglob("*")) if p.is_file()}


def store_is_whole(workdir: Path) -> None:
    """Every result parses and has its predictions beside it (predictions are written first)."""
    for job_id in results(workdir):
        assert next((workdir / "results").rglob(f"{job_id}.predictions.npz"), None), job_id


def warm_copy(reference: Reference, dest: Path) -> Path:
    """The reference workdir without its results, job records and site: caches and checkpoint made,
    so a test pays for its jobs only."""
    shutil.copytree(reference.workdir, dest, ignore=shutil.ignore_patterns("results", "jobs", "site"))
    return dest


def file_size_limit(limit: int) -> Callable[[], None]:
    """A child's setup for a full disk: writes past ``limit`` bytes fail (EFBIG) instead of raising
    SIGXFSZ, the way they fail with ENOSPC once a disk fills; files below it are written."""
    def setup() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    return setup


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("ctbench: ")]
