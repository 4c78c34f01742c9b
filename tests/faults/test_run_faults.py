"""The fault matrix, runs (issue 10): a run killed mid-job or at random points, interrupted with
Ctrl-C, out of disk space, or sharing its workdir with a second run ends with the results of an
uninterrupted run, recomputes no finished job and leaves nothing partial behind.

Every run is the real CLI in a subprocess, on one tiny grid (the phantom body-region task, the
random checkpoint, linear and finetune, seeds 42 and 1: four jobs, two of them seconds of
training), compared with one uninterrupted reference run of the same grid.
"""
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from benchmark.core.atomic import atomic_open, sweep_stale_temps
from tests.cli_helpers import REPO, grid_args, numbers, ran_count, results, run_cli
from tests.faults.runkit import (
    ENV,
    Reference,
    alive_after,
    error_lines,
    failures,
    file_ids,
    file_size_limit,
    kill_group,
    reached,
    running_jobs,
    signal_group,
    site_bytes,
    start,
    states,
    store_is_whole,
    temp_files,
    timed_run,
    wait_for,
    wait_until,
    warm_copy,
)

JOBS = 4
KILL_SEED = 230  # the kill points below are drawn from it: the same points on every run of the test
KILLS = 5
RESUME = "ctbench: interrupted; finished jobs are stored, run the same command again to resume"


def run_args(workdir: Path, phantom: Path, *extra: str) -> list[str]:
    return [*grid_args(workdir, phantom), *extra]


@pytest.fixture(scope="module")
def reference(tiny_phantom, tmp_path_factory) -> Reference:
    """The uninterrupted run, cold (checkpoint, slice cache and features made from nothing), timed."""
    workdir = tmp_path_factory.mktemp("reference")
    return timed_run(run_args(workdir, tiny_phantom), workdir)


def test_sigkill_mid_job_resumes_without_recomputing_finished_jobs(reference, tiny_phantom, tmp_path):
    """SIGKILL a second into a training job, once another job is stored; a killed writer's temp
    file is planted too. The next run sweeps it, runs only what is missing, and leaves every finished
    file as it was (same inode, same mtime). (The e2e suite kills one the same way; a `--jobs 2`
    run's workers are killed by the Ctrl-C test below.)"""
    workdir = warm_copy(reference, tmp_path / "work")
    argv = run_args(workdir, tiny_phantom)
    proc = start(argv)
    wait_for(lambda: results(workdir) and running_jobs(workdir), proc)
    time.sleep(1.0)  # into the job
    kill_group(proc)

    store_is_whole(workdir)
    done, killed, state = set(results(workdir)), running_jobs(workdir), states(workdir)
    assert 1 <= len(done) < JOBS and len(killed) == 1
    assert {state[j] for j in killed} == {"pending"} and {state[j] for j in done} == {"done"}
    before = file_ids(workdir)
    orphan = workdir / "results" / "random" / "phantom-body-region" / ".killed.json.a1b2c3d4.tmp"
    orphan.write_text('{"job": {"job_id": "half a res')  # what a writer killed mid-write leaves

    again = run_cli(*argv, env=ENV)
    assert f"{len(done)} already done" in again.stderr and ran_count(again.stderr) == JOBS - len(done)
    assert "removed 1 partial file(s) that a killed run left" in again.stderr and not temp_files(workdir)
    assert not list((workdir / "jobs" / "running").glob("*.json"))  # the killed job's marker went too
    after = file_ids(workdir)
    assert {name: after[name] for name in before} == before  # no finished job was recomputed or rewritten
    assert numbers(workdir) == numbers(reference.workdir)


def test_a_run_killed_at_random_points_ends_with_the_results_of_an_uninterrupted_run(reference, tiny_phantom,
                                                                                     tmp_path, capsys):
    """Acceptance: a run SIGKILLed (the whole process group) at five or more seeded random points,
    restarted each time from where it stopped, then run to the end, stores the reference's numbers
    and builds the reference's site, byte for byte, with nothing partial left.

    Each kill point is a seeded fraction of the reference's timeline of what the restart has left
    (its startup, each job still to do, the site), found in the restart by what it writes, so a
    busy machine shifts a point within its phase but not to another phase. It starts cold: kills
    land in the imports, making the checkpoint, the slice cache and features, a training job, a
    linear one, the site. The fractions are stratified (one in each fifth of the timeline, in a
    seeded order). A restart that ends before its point is no kill; another point is drawn."""
    rng, workdir = random.Random(KILL_SEED), tmp_path / "work"
    argv, log = run_args(workdir, tiny_phantom), []
    fractions = [(stratum + rng.random()) / KILLS for stratum in rng.sample(range(KILLS), KILLS)]  # spread out
    while sum(entry["killed"] for entry in log) < KILLS:
        assert len(log) < 2 * KILLS, log
        fraction = fractions.pop(0) if fractions else rng.random()
        log.append(_attempt(argv, workdir, *reference.point(set(results(workdir)), fraction)))
        store_is_whole(workdir)
    final = run_cli(*argv, env=ENV)
    log.append({"final": [line for line in final.stderr.splitlines() if not line.startswith("/")]})
    with capsys.disabled():
        print(f"\nreference {[(name[-20:], round(s, 1)) for name, s in reference.segments(set())]}; kill points "
              "and what each run found:", *log, sep="\n  ")

    assert numbers(workdir) == numbers(reference.workdir)
    assert site_bytes(workdir) == site_bytes(reference.workdir)
    assert not temp_files(workdir) and set(states(workdir).values()) == {"done"}


def _attempt(argv: list[str], workdir: Path, segment: str, offset: float) -> dict:
    """One run, SIGKILLed ``offset`` seconds into ``segment`` unless it ends first: what it found
    on starting, and the state it was killed in."""
    started, proc = time.time(), start(argv)
    killed = wait_until(reached(workdir, segment, started), proc) and alive_after(proc, offset)
    running = sorted(running_jobs(workdir, since=started))
    stderr = kill_group(proc)[1] if killed else proc.communicate()[1]
    return {"point": f"{offset:.1f} s into {segment}", "killed": killed, "running": running,
            "said": [line for line in stderr.splitlines() if "already done" in line or "partial" in line],
            "results": len(results(workdir)), "checkpoint_begun": any((workdir / "checkpoints").glob(".*.lock")),
            "checkpoint": any((workdir / "checkpoints").glob("*.safetensors")),
            "slices": any((workdir / "cache" / "slices").glob("*/*/meta.json")),
            "features": any((workdir / "cache" / "features").glob("*.npy")),
            "site": (workdir / "site" / "index.html").is_file(), "partial_left": [p.name for p in temp_files(workdir)]}


def test_ctrl_c_exits_130_with_one_line_and_the_next_run_completes(reference, tiny_phantom, tmp_path):
    """SIGINT to the process group mid-job, as Ctrl-C in a terminal, first with `--jobs 2`, then
    in process: each time exit 130 within seconds, one line saying how to resume, no traceback
    (in the terminal or the workers' logs), nothing partial, no claim left held. The same
    command then finishes the grid with the reference's numbers."""
    workdir = warm_copy(reference, tmp_path / "work")
    argv = run_args(workdir, tiny_phantom)
    for jobs in ("2", "1"):
        _interrupt_mid_job([*argv, "--jobs", jobs], workdir)
    done = len(results(workdir))
    again = run_cli(*argv, env=ENV)
    assert f"{done} already done" in again.stderr and ran_count(again.stderr) == JOBS - done
    assert numbers(workdir) == numbers(reference.workdir)


def _interrupt_mid_job(argv: list[str], workdir: Path) -> None:
    started, proc = time.time(), start(argv)
    wait_for(lambda: running_jobs(workdir, since=started), proc)
    time.sleep(1.0)  # into the job
    signal_group(proc, signal.SIGINT)
    sent = time.monotonic()
    out, err = proc.communicate(timeout=120)
    took = time.monotonic() - sent

    assert proc.returncode == 130 and took < 30, (proc.returncode, took, err)
    assert error_lines(err) == [RESUME] and err.strip().splitlines()[-1] == RESUME and not out.strip()
    for text in [err] + [p.read_text() for p in (workdir / "jobs" / "workers").glob("*.log")]:
        assert "Traceback" not in text and "KeyboardInterrupt" not in text, text
    store_is_whole(workdir)
    assert not temp_files(workdir) and "running" not in states(workdir).values()
    assert not list((workdir / "jobs" / "running").glob("*.json"))  # the parent cleared its workers' markers


def test_a_full_disk_while_storing_a_result_keeps_the_old_bytes_and_stops_with_one_line(reference, tiny_phantom,
                                                                                        tmp_path):
    """A run whose disk fills while it stores a job's predictions (a file size limit: writes past
    8000 bytes fail, as on a full disk; the predictions are 9 KB, everything written before them
    less). The job's predictions file from an earlier, killed attempt keeps its bytes, no temp
    file is left, the run stops with one line and exit 4, and the job is neither done nor failed
    (a failed one would wait for --retry-failed): once there is room, the same command runs it."""
    workdir = tmp_path / "work"
    shutil.copytree(reference.workdir, workdir)
    job = next(j for j in sorted(results(workdir)) if "--linear--" in j)
    result = next((workdir / "results").rglob(f"{job}.json"))
    result.unlink()  # a run killed between storing this job's predictions and its result
    kept = {p: p.read_bytes() for p in [*(workdir / "results").rglob("*"), *(workdir / "site").rglob("*")]
            if p.is_file()}

    proc = start(run_args(workdir, tiny_phantom), preexec_fn=file_size_limit(8000))
    out, err = proc.communicate(timeout=600)
    assert proc.returncode == 4 and "Traceback" not in err, err
    assert len(error_lines(err)) == 1 and "File too large" in err and "run the same command again" in err, err
    assert {p: p.read_bytes() for p in kept} == kept and not result.exists() and not temp_files(workdir)
    assert states(workdir)[job] == "pending" and failures(workdir) == {}  # the next run runs it


def test_an_overwrite_that_finds_the_disk_full_keeps_the_old_file(tmp_path):
    """The atomic writer alone, in a process whose writes fail past 4 KB: replacing a file with
    a larger one raises DiskFullError naming the file, and the old bytes and no temp file remain."""
    target = tmp_path / "grid.json"
    target.write_text('{"old": true}\n')
    code = ("import resource, signal, sys\n"
            "signal.signal(signal.SIGXFSZ, signal.SIG_IGN)\n"
            "resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))\n"
            "from benchmark.core.atomic import DiskFullError, write_json\n"
            "try:\n"
            f"    write_json({str(target)!r}, {{'new': 'x' * 10000}})\n"
            "except DiskFullError as exc:\n"
            "    print(exc, exc.exit_code)\n")
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.stdout.startswith(f"{target}: cannot write: File too large") and proc.stdout.strip().endswith(" 4")
    assert target.read_text() == '{"old": true}\n' and list(tmp_path.iterdir()) == [target]


def test_the_sweep_removes_the_temp_files_of_killed_writers_only(tmp_path):
    """Two writer processes stop in the middle of an atomic write; one is SIGKILLed. The sweep
    removes the dead one's temp file, leaves the live one's (and this process's own), and the
    live writer then completes its file whole."""
    code = ("import sys\nfrom benchmark.core.atomic import atomic_open\n"
            "with atomic_open(sys.argv[1]) as handle:\n"
            "    handle.write('half'); handle.flush(); print('writing', flush=True); sys.stdin.readline()\n"
            "    handle.write(' and whole')\n")
    writers = {name: subprocess.Popen([sys.executable, "-c", code, str(tmp_path / name)], cwd=REPO, text=True,
                                      stdin=subprocess.PIPE, stdout=subprocess.PIPE) for name in ("dead", "live")}
    for writer in writers.values():
        assert writer.stdout.readline() == "writing\n"
    writers["dead"].kill()
    writers["dead"].wait()
    with atomic_open(tmp_path / "mine") as handle:
        handle.write("mine")
        temps = {p.name.split(".")[1]: p for p in tmp_path.glob(".*.tmp")}
        assert set(temps) == {"dead", "live", "mine"}
        assert sweep_stale_temps([tmp_path]) == [temps["dead"]]
    writers["live"].communicate("go\n", timeout=60)
    assert (tmp_path / "live").read_text() == "half and whole" and (tmp_path / "mine").read_text() == "mine"
    assert not list(tmp_path.glob(".*.tmp")) and not (tmp_path / "dead").exists()


def test_two_concurrent_runs_on_one_workdir_finish_the_grid_once_with_the_reference_numbers(reference,
                                                                                           tiny_phantom, tmp_path):
    """A `--jobs 2` run and an in-process run started together on one workdir (the e2e suite has
    two in-process runs): each job runs exactly once, with the reference's numbers. The linear
    jobs only: seconds each once the features are cached, so the claims race."""
    workdir = warm_copy(reference, tmp_path / "work")
    argv = [*grid_args(workdir, tiny_phantom, protocols="linear")]
    procs = [start([*argv, "--jobs", "2"]), start(argv)]
    outputs = [p.communicate(timeout=600) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs
    ran = [ran_count(err) if "\nran " in err else 0 for _, err in outputs]  # 0: the other run did them all
    assert sum(ran) == JOBS // 2  # a job run twice would be counted twice
    linear = {job: value for job, value in numbers(reference.workdir).items() if "--linear--" in job}
    assert numbers(workdir) == linear
    assert not temp_files(workdir) and set(states(workdir).values()) == {"done"}
