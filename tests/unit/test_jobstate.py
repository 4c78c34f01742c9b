"""Job claims, running markers, failure records and cache locks, across real processes."""
import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np

from benchmark.core.locks import exclusive, is_held
from benchmark.execution.jobstate import JobState
from benchmark.results.job import Job
from tests.cli_helpers import REPO

JOB = Job("random", "ab" * 32, "phantom-body-region", "1", "linear", "1", 1.0, 42, "demo")


def start(code: str) -> subprocess.Popen:
    """Another Python process running ``code`` from the repository (a second worker)."""
    return subprocess.Popen([sys.executable, "-c", textwrap.dedent(code)], cwd=REPO, stdout=subprocess.PIPE, text=True)


def wait_for(predicate, timeout=30.0):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_a_claim_held_by_another_process_excludes_this_one_until_that_process_dies(tmp_path):
    state = JobState(tmp_path)
    holder = start(f"""
        import time
        from benchmark.execution.jobstate import JobState
        with JobState({str(tmp_path)!r}).claim({JOB.job_id!r}) as mine:
            print(mine, flush=True)
            time.sleep(120)
    """)
    assert holder.stdout.readline().strip() == "True"
    with state.claim(JOB.job_id) as mine:
        assert mine is False
    running = state.running()
    assert list(running) == [JOB.job_id] and running[JOB.job_id]["pid"] == holder.pid
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    assert state.running() == {}  # the marker outlived its process; the released claim says it is not running
    with state.claim(JOB.job_id) as mine:
        assert mine is True
        assert list(state.running()) == [JOB.job_id]
    assert not (tmp_path / "running" / f"{JOB.job_id}.json").exists()


def test_a_failure_keeps_the_error_traceback_and_log_tail_until_cleared(tmp_path):
    state = JobState(tmp_path)
    log = state.log_path(JOB.job_id)
    log.parent.mkdir(parents=True)
    log.write_text("".join(f"line {i}\n" for i in range(100)))
    state.record_failure(JOB, "cache.npz: unreadable", "Traceback ...")
    record = state.failures()[JOB.job_id]
    assert record["error"] == "cache.npz: unreadable" and record["traceback"] == "Traceback ..."
    assert record["log_tail"] == [f"line {i}" for i in range(60, 100)] and record["pid"] == os.getpid()
    assert record["job"]["job_id"] == JOB.job_id and state.failed_ids() == {JOB.job_id}
    state.clear_failure(JOB.job_id)
    assert state.failures() == {} and state.failed_ids() == set()


def test_the_recorded_grid_round_trips_to_the_same_job_ids(tmp_path):
    state = JobState(tmp_path)
    assert state.read_grid() is None
    state.write_grid([JOB], "demo")
    assert [Job.from_dict(item).job_id for item in state.read_grid()] == [JOB.job_id]


def test_concurrent_workers_compute_a_feature_cache_once(tmp_path):
    """Two processes ask for the same cache key at once: one computes, the other waits and loads."""
    cache, calls = tmp_path / "features.npy", tmp_path / "calls.txt"
    code = f"""
        import time
        import numpy as np
        from pathlib import Path
        from benchmark.evaluation.features import cached_features
        from benchmark.data.slices import SliceSet

        n = 4
        slices = SliceSet(np.zeros((n, 1, 2, 2), np.float16), np.zeros(n, np.int64),
                          np.asarray([f"p{{i}}" for i in range(n)]), np.asarray([f"c{{i}}" for i in range(n)]), "k")

        def compute():
            with open({str(calls)!r}, "a") as handle:
                handle.write("computed\\n")
            time.sleep(1.0)  # long enough for the other worker to arrive while this one holds the lock
            return np.arange(8, dtype=np.float32).reshape(4, 2), {{"format": "test"}}

        features, record = cached_features(Path({str(cache)!r}), slices, compute)
        print(features.sum(), record["format"], flush=True)
    """
    workers = [start(code), start(code)]
    outputs = [w.communicate(timeout=120)[0].strip() for w in workers]
    assert [w.returncode for w in workers] == [0, 0]
    assert outputs == ["28.0 test", "28.0 test"]
    assert calls.read_text() == "computed\n"
    assert np.load(cache).shape == (4, 2)


def test_exclusive_waits_and_says_so_while_another_process_holds_the_lock(tmp_path):
    target = tmp_path / "site"
    holder = start(f"""
        import time
        from benchmark.core.locks import exclusive
        with exclusive({str(target)!r}, "x"):
            print("held", flush=True)
            time.sleep(1.5)
    """)
    assert holder.stdout.readline().strip() == "held"
    said = []
    started = time.monotonic()
    with exclusive(target, "building the site", said.append):
        waited = time.monotonic() - started
    holder.wait()
    assert said == ["waiting for another process to finish building the site"] and waited > 0.3
    assert not is_held(target)


def test_state_files_that_vanish_or_are_half_written_read_as_empty(tmp_path):
    """Status reads state other workers are rewriting; a torn read must not crash it."""
    state = JobState(tmp_path)
    (tmp_path / "failed").mkdir()
    (tmp_path / "failed" / f"{JOB.job_id}.json").write_text('{"error": ')
    assert state.failures() == {JOB.job_id: {}}
    assert json.loads(json.dumps(state.running())) == {}
