"""Executors end to end: the same numbers everywhere, concurrent runs, a killed worker, a failed job.

Each test runs the real CLI in subprocesses on the tiny phantom, as users and clusters do.
"""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.cli_helpers import REPO, grid_args, numbers, ran_count, results, run_cli, status


@pytest.fixture(scope="module")
def in_process(tiny_phantom, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("local")
    run_cli(*grid_args(workdir, tiny_phantom))
    return workdir


@pytest.mark.parametrize("executor", [["local", "--jobs", "2"], ["submitit-local", "--jobs", "2"]],
                         ids=["local-jobs-2", "submitit-local"])
def test_every_executor_computes_the_same_numbers_as_the_plain_local_run(executor, in_process, tiny_phantom,
                                                                          tmp_path):
    proc = run_cli(*grid_args(tmp_path, tiny_phantom), "--executor", *executor)
    assert ran_count(proc.stderr) == 4
    expected, got = numbers(in_process), numbers(tmp_path)
    assert len(expected) == 4 and got.keys() == expected.keys()
    for job_id in expected:
        assert got[job_id] == expected[job_id], job_id
    assert set(status(tmp_path)["jobs"].values()) == {"done"}


def test_two_concurrent_runs_on_one_workdir_do_each_job_exactly_once(tiny_phantom, tmp_path):
    args = [sys.executable, "-m", "benchmark.cli", *grid_args(tmp_path, tiny_phantom, seeds="42,1,2")]
    env = {**os.environ, "TQDM_DISABLE": "1"}
    procs = [subprocess.Popen(args, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    outputs = [p.communicate(timeout=600) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs
    found = results(tmp_path)
    assert len(found) == 6
    assert sum(ran_count(err) for _, err in outputs) == 6  # a job run twice would be counted twice
    assert {r["provenance"]["worker"]["pid"] for r in found.values()} <= {p.pid for p in procs}
    assert not list((tmp_path / "results").rglob("*.tmp")) and set(status(tmp_path)["jobs"].values()) == {"done"}
    assert [Path(out.strip().splitlines()[-1]).name for out, _ in outputs] == ["index.html", "index.html"]


def test_a_worker_killed_mid_job_leaves_no_partial_result_and_its_job_runs_next_time(tiny_phantom, tmp_path):
    args = grid_args(tmp_path, tiny_phantom, protocols="finetune", seeds="42,1,2")
    proc = subprocess.Popen([sys.executable, "-m", "benchmark.cli", *args], cwd=REPO,
                            env={**os.environ, "TQDM_DISABLE": "1"}, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    running = tmp_path / "jobs" / "running"
    deadline = time.monotonic() + 300
    while not (running.is_dir() and list(running.glob("*.json")) and results(tmp_path)):
        assert proc.poll() is None and time.monotonic() < deadline, "the run ended before it could be killed"
        time.sleep(0.05)
    killed_job = next(running.glob("*.json")).name.removesuffix(".json")
    proc.send_signal(signal.SIGKILL)
    proc.wait()

    before = results(tmp_path)  # every file present parses
    assert killed_job not in before and 1 <= len(before) < 3
    states = status(tmp_path)["jobs"]
    assert states[killed_job] == "pending"  # its marker outlived it, but its claim died with it
    again = run_cli(*args)
    assert f"{len(before)} already done" in again.stderr and ran_count(again.stderr) == 3 - len(before)
    after = results(tmp_path)
    assert len(after) == 3 and all(after[j]["provenance"] == before[j]["provenance"] for j in before)


def test_a_failed_job_records_its_error_and_log_and_only_retry_failed_reruns_it(tiny_phantom, tmp_path):
    run_cli(*grid_args(tmp_path, tiny_phantom, protocols="linear", seeds="42"))
    cache = next((tmp_path / "cache" / "features").glob("*.npy"))
    cache.write_bytes(cache.read_bytes()[:100])  # a feature cache cut short (a full disk, a killed copy)

    failed = run_cli(*grid_args(tmp_path, tiny_phantom, protocols="linear", seeds="42,1"), check=False)
    assert failed.returncode == 4 and "1 job(s) failed" in failed.stderr and "Traceback" not in failed.stderr
    shown = run_cli("status", "--workdir", str(tmp_path)).stdout
    assert "failed: phantom-body-region--linear--random--s1--seed1" in shown and "  | " in shown
    record = next(iter(status(tmp_path)["failed"].values()))
    assert record["traceback"].startswith("Traceback") and any("linear: " in line for line in record["log_tail"])

    held = run_cli(*grid_args(tmp_path, tiny_phantom, protocols="linear", seeds="42,1"), check=False)
    assert held.returncode == 4 and "failed in an earlier run and were not retried" in held.stderr
    assert ran_count_or_zero(held.stderr) == 0

    cache.unlink()
    retried = run_cli(*grid_args(tmp_path, tiny_phantom, protocols="linear", seeds="42,1"), "--retry-failed")
    assert ran_count(retried.stderr) == 1 and status(tmp_path)["failed"] == {}
    assert set(status(tmp_path)["jobs"].values()) == {"done"}


def ran_count_or_zero(stderr: str) -> int:
    return ran_count(stderr) if any(line.startswith("ran ") for line in stderr.splitlines()) else 0


def test_slurm_submits_one_job_array_with_the_given_sbatch_options(tiny_phantom, tmp_path):
    """No cluster here: a stand-in ``sbatch`` on PATH keeps the script submitit writes and answers
    as SLURM does; --no-wait returns before anything would poll the queue."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool, body in (("sbatch", f"cp \"$1\" {tmp_path / 'submitted.sh'}\necho 'Submitted batch job 4242'"),
                       ("srun", "exit 1")):
        (bin_dir / tool).write_text(f"#!/bin/sh\n{body}\n")
        (bin_dir / tool).chmod(0o755)
    workdir = tmp_path / "work"
    proc = run_cli(*grid_args(workdir, tiny_phantom), "--executor", "slurm", "--no-wait", "--slurm-partition", "gpu",
                   "--slurm-time", "2:00:00", "--slurm-gpus-per-job", "1", "--slurm-cpus-per-job", "6",
                   "--slurm-array-parallelism", "1", "--slurm-account", "lab", "--slurm-extra", "qos=high",
                   env={"PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"})
    script = (tmp_path / "submitted.sh").read_text()
    for line in ("#SBATCH --array=0-1%1", "#SBATCH --partition=gpu", "#SBATCH --time=120",
                 "#SBATCH --cpus-per-task=6", "#SBATCH --account=lab", "#SBATCH --qos=high",
                 "#SBATCH --gpus-per-node=1"):
        assert line in script, line
    assert "gpu" in script and "submitit" in script
    assert "SLURM job 4242" in proc.stderr and "ctbench status" in proc.stderr and not proc.stdout.strip()
    assert set(status(workdir)["jobs"].values()) == {"pending"}
