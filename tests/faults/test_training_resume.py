"""Long training jobs on a cluster: killed, stopped, timed out or preempted, they resume from
their saved state and end with the bytes of an uninterrupted run.

Each test drives the real CLI in its own process group and signals it as a user, a shell or
a scheduler would; the finetune job saves its state every step (``--checkpoint-every 0``), so
every kill point is a resumable one.
"""
from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from tests.cli_helpers import grid_args, numbers, ran_count, results, run_cli, status
from tests.faults.runkit import ENV, kill_group, running_jobs, signal_group, start, wait_for

SAVED = "saved training state at epoch"
RESUMED = "resumed from training state"
TERMINATED = "ctbench: terminated; finished jobs are stored, run the same command again to resume"


def finetune_args(workdir: Path, phantom: Path, seeds: str = "42", *extra: str) -> list[str]:
    # three epochs: the points below fall inside epochs and on their ends whatever the demo's step budget
    return [*grid_args(workdir, phantom, protocols="finetune", seeds=seeds), "--max-epochs", "3", *extra]


@pytest.fixture(scope="module")
def reference(tiny_phantom, tmp_path_factory) -> Path:
    """Two finetune jobs run uninterrupted, saving no state (the default: every 10 minutes)."""
    workdir = tmp_path_factory.mktemp("reference")
    run_cli(*finetune_args(workdir, tiny_phantom, "42,1"), env=ENV)
    return workdir


def job_log(workdir: Path) -> str:
    return "\n".join(p.read_text() for p in sorted((workdir / "jobs" / "logs").glob("*.log")))


def saves(workdir: Path) -> int:
    return job_log(workdir).count(SAVED)


def resumed_points(workdir: Path) -> list[str]:
    return [line.split(RESUMED, 1)[1] for line in job_log(workdir).splitlines() if RESUMED in line]


def test_a_finetune_job_sigkilled_at_three_points_resumes_to_the_uninterrupted_bytes(reference, tiny_phantom,
                                                                                     tmp_path):
    """SIGKILL after the 3rd, 10th and 18th saved step (of 24 steps and 3 epoch ends); each rerun
    says where it resumed, and the last one stores the reference's metrics, hyperparameters and
    prediction bytes. The state file is gone once the result is written."""
    workdir = tmp_path / "work"
    argv = finetune_args(workdir, tiny_phantom, "42", "--checkpoint-every", "0")
    for target in (3, 10, 18):
        proc = start(argv)
        wait_for(lambda target=target: saves(workdir) >= target, proc, timeout=300)
        kill_group(proc)
        assert not results(workdir), "killed after the result was written: the kill came too late"
    assert list((workdir / "jobs" / "state").glob("*.pt")), "no saved state to resume from"
    resumable = status(workdir)["resumable"]
    assert len(resumable) == 1 and next(iter(resumable.values()))["step"] >= 0
    final = run_cli(*argv, env=ENV)
    assert ran_count(final.stderr) == 1
    points = resumed_points(workdir)
    assert len(points) == 3 and len(set(points)) == 3, points  # three resumes, each from a later point
    stored = numbers(workdir)
    assert stored == {job: value for job, value in numbers(reference).items() if job in stored}
    assert not list((workdir / "jobs" / "state").glob("*")) and not status(workdir)["resumable"]
    provenance = next(iter(results(workdir).values()))["provenance"]
    assert [entry["step"] for entry in provenance["resumed"]] and len(provenance["resumed"]) == 3


def test_sigterm_to_a_two_worker_run_stops_every_worker_and_the_next_run_finishes_the_rest(reference,
                                                                                           tiny_phantom, tmp_path):
    """SIGTERM to the parent of `--jobs 2` mid-training (not to its group: a scheduler may signal
    only the process it started): exit 143 with one line, no worker left after 10 s, the training
    state saved; the same command then runs only the unfinished jobs, resuming the trained one."""
    workdir = tmp_path / "work"
    argv = finetune_args(workdir, tiny_phantom, "42,1", "--jobs", "2", "--checkpoint-every", "0")
    started, proc = time.time(), start(argv)
    wait_for(lambda: running_jobs(workdir, since=started) and saves(workdir) >= 2, proc, timeout=300)
    workers = _worker_pids(workdir)
    proc.send_signal(signal.SIGTERM)
    sent = time.monotonic()
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, (proc.returncode, err)
    assert err.strip().splitlines()[-1] == TERMINATED and "Traceback" not in err
    deadline = sent + 10
    while any(_alive(pid) for pid in workers) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert workers and not [pid for pid in workers if _alive(pid)], "a worker outlived the stop by 10 s"
    assert list((workdir / "jobs" / "state").glob("*.pt")), "the stopped training job saved no state"
    done = len(results(workdir))
    again = run_cli(*argv, env=ENV)
    assert f"{done} already done" in again.stderr and ran_count(again.stderr) == 2 - done
    assert resumed_points(workdir)
    assert numbers(workdir) == numbers(reference)


def test_a_submitit_local_task_timed_out_mid_training_is_requeued_and_finishes_the_uninterrupted_result(
        reference, tiny_phantom, tmp_path):
    """The time-out signal submitit's controller sends a task ahead of its limit (USR2), sent here
    mid-training: the task saves its state at the next step, submitit requeues it without anyone,
    and the requeued task resumes the job and stores the reference's numbers."""
    workdir = tmp_path / "work"
    argv = finetune_args(workdir, tiny_phantom, "42", "--executor", "submitit-local", "--checkpoint-every", "0")
    started, proc = time.time(), start(argv)
    wait_for(lambda: running_jobs(workdir, since=started) and saves(workdir) >= 4, proc, timeout=300)
    task = next(iter(_running_pids(workdir)))
    os.kill(task, signal.SIGUSR2)
    out, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err
    assert ran_count(err) == 1 and resumed_points(workdir)
    stored = numbers(workdir)
    assert stored == {job: value for job, value in numbers(reference).items() if job in stored}
    logs = "\n".join(p.read_text(errors="replace") for p in (workdir / "jobs" / "submitit").rglob("*.out"))
    assert "Requeued job" in logs or "requeue" in logs.lower(), logs[-2000:]


def _running_pids(workdir: Path) -> set[int]:
    import json

    return {json.loads(p.read_text())["pid"] for p in (workdir / "jobs" / "running").glob("*.json")}


def _worker_pids(workdir: Path) -> list[int]:
    return [int(p.stem.split("-")[1]) for p in (workdir / "jobs" / "workers").glob("worker-*.log")]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie (exited, not yet reaped by its dead parent's reaper) is not running
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(") ", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def test_sigterm_in_process_saves_the_state_and_exits_143(tiny_phantom, tmp_path):
    """`--jobs 1`: SIGTERM to the group mid-training; the job stops at a step boundary with its state
    saved, the run exits 143, and nothing partial is left."""
    workdir = tmp_path / "work"
    argv = finetune_args(workdir, tiny_phantom, "42", "--checkpoint-every", "60")  # saved only because stopped
    proc = start(argv)
    wait_for(lambda: "epoch 1:" in job_log(workdir) if (workdir / "jobs" / "logs").is_dir() else False, proc,
             timeout=300)
    signal_group(proc, signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 143 and err.strip().splitlines()[-1] == TERMINATED, err
    assert "stop requested: training state saved" in job_log(workdir)
    assert list((workdir / "jobs" / "state").glob("*.pt")) and not list(workdir.rglob("*.tmp"))
