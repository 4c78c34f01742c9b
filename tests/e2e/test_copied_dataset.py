"""A copied dataset is the same dataset: `cp -r` to another folder (new mtimes, another path), then
`ctbench run --data TASK=NEWDIR` on the same workdir reuses the slice cache, the split manifests
and every finished job. A workdir written when the fingerprint used mtimes is migrated, not mixed."""
import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from benchmark.data.fingerprint import dataset_fingerprint, legacy_fingerprint
from benchmark.data.split_verify import verify
from tests.cli_helpers import REPO, ran_count, run_cli
from tests.fixtures.datasets.nifti_ct import write_lits

TASK = "lits-tumour-present"  # a LiTS-layout classification task: the linear protocol is seconds


def run_args(workdir: Path, data: Path) -> list[str]:
    return ["run", "--workdir", str(workdir), "--device", "cpu", "--scales", "1", "--seeds", "42,1", "--tasks", TASK,
            "--checkpoints", "random", "--data", f"{TASK}={data}", "--protocols", "linear", "--analysis-task", "none"]


def copy_with_new_mtimes(root: Path, dest: Path) -> Path:
    """`cp -r` without -p: the bytes, at another path, with mtimes of their own."""
    copy = shutil.copytree(root, dest, copy_function=shutil.copy)
    for path in copy.rglob("*"):
        os.utime(path, ns=(1_500_000_000_000_000_000, 1_500_000_000_000_000_000))
    return copy


def slice_cache_state(workdir: Path) -> dict[str, tuple]:
    """Every slice-cache file by path: its inode and mtime (a rebuild or rewrite changes them) and, for
    meta.json, its bytes."""
    root = workdir / "cache" / "slices"
    return {p.relative_to(root).as_posix(): (p.stat().st_ino, p.stat().st_mtime_ns,
                                            p.read_bytes() if p.name == "meta.json" else None)
            for p in sorted(root.rglob("*")) if p.is_file() and not p.name.endswith(".lock")}


def manifests(workdir: Path) -> dict[str, bytes]:
    root = workdir / "splits"
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def forget_one_result(workdir: Path) -> str:
    """Delete one finished job's result and predictions, so exactly that job must run again."""
    result = sorted((workdir / "results").rglob("*.json"))[0]
    job_id = json.loads(result.read_text())["job"]["job_id"]
    result.unlink()
    next(result.parent.glob(f"{job_id}.predictions.npz")).unlink()
    return job_id


@pytest.fixture(scope="module")
def lits(tmp_path_factory) -> Path:
    return write_lits(tmp_path_factory.mktemp("lits") / "LITS17", n_volumes=12)


@pytest.fixture(scope="module")
def finished(lits, tmp_path_factory) -> Path:
    workdir = tmp_path_factory.mktemp("work")
    assert ran_count(run_cli(*run_args(workdir, lits)).stderr) == 2
    return workdir


def test_a_copy_with_new_mtimes_reuses_the_cache_the_manifests_and_the_finished_jobs(finished, lits, tmp_path):
    cache, splits = slice_cache_state(finished), manifests(finished)
    assert any(name.endswith("/images.npy") for name in cache)
    copy = copy_with_new_mtimes(lits, tmp_path / "copied" / "LITS")
    job_id = forget_one_result(finished)
    again = run_cli(*run_args(finished, copy))
    assert ran_count(again.stderr) == 1 and "2 jobs in the grid: 1 already done, 1 to run" in again.stderr
    assert (finished / "jobs" / "logs").glob(f"{job_id}.log")
    assert slice_cache_state(finished) == cache  # same folders, same files, untouched: nothing rebuilt
    assert manifests(finished) == splits  # byte for byte, no new split folder
    assert len(list((finished / "results").rglob("*.json"))) == 2


def test_a_copy_of_a_finished_grid_runs_nothing(finished, lits, tmp_path):
    copy = copy_with_new_mtimes(lits, tmp_path / "another" / "copy")
    again = run_cli(*run_args(finished, copy))
    assert "2 jobs in the grid: 2 already done, 0 to run" in again.stderr
    assert not any(line.startswith("ran ") for line in again.stderr.splitlines())


# `ctbench run` as it was when the fingerprint used mtimes: slice cache and split folder named by that.
LEGACY_RUN = textwrap.dedent("""
    import sys

    from benchmark.cli.main import main
    from benchmark.data.fingerprint import legacy_fingerprint
    from benchmark.data.task import Task

    Task.fingerprint = lambda self, root, hash_cache=None: legacy_fingerprint(root)
    sys.exit(main(sys.argv[1:]))
""")


def test_a_workdir_keyed_by_the_legacy_fingerprint_is_migrated_not_rebuilt(lits, tmp_path):
    data = copy_with_new_mtimes(lits, tmp_path / "LITS17")
    workdir, legacy, new = tmp_path / "work", legacy_fingerprint(data), dataset_fingerprint(data)
    proc = subprocess.run([sys.executable, "-c", LEGACY_RUN, *run_args(workdir, data)], cwd=REPO, text=True,
                          capture_output=True, timeout=900, env={**os.environ, "TQDM_DISABLE": "1"})
    assert proc.returncode == 0, proc.stderr
    task_splits = workdir / "splits" / f"{TASK}@1"
    assert [p.name for p in task_splits.iterdir()] == [f"{legacy[:16]}-m2"]
    (old_cache,) = [p for p in (workdir / "cache" / "slices" / f"{TASK}@1").iterdir() if p.is_dir()]
    images = (old_cache / "images.npy").stat()
    legacy_manifests = manifests(workdir)

    forget_one_result(workdir)
    again = run_cli(*run_args(workdir, data))
    assert ran_count(again.stderr) == 1
    said = again.stderr  # the task is prepared before the job's own log opens: the lines reach the terminal
    assert f"slice cache of {TASK}: moved {old_cache.name}, keyed by the old" in said and "nothing was rebuilt" in said
    assert f"split manifests of {TASK}: written anew" in said and "Same test and pool patients." in said

    (cache,) = [p for p in (workdir / "cache" / "slices" / f"{TASK}@1").iterdir() if p.is_dir()]
    assert cache.name != old_cache.name and not old_cache.exists()
    moved = (cache / "images.npy").stat()
    assert (moved.st_ino, moved.st_mtime_ns) == (images.st_ino, images.st_mtime_ns)  # moved, not rebuilt
    meta = json.loads((cache / "meta.json").read_text())
    assert (meta["data_fingerprint"], meta["legacy_data_fingerprint"]) == (new, legacy)

    # the legacy folder stays as it was (old results point at it); the new one is the new fingerprint's only
    assert sorted(p.name for p in task_splits.iterdir()) == sorted([f"{legacy[:16]}-m2", f"{new[:16]}-m2"])
    assert {k: v for k, v in manifests(workdir).items() if k.startswith(f"{TASK}@1/{legacy[:16]}")} == legacy_manifests
    split = json.loads((task_splits / f"{new[:16]}-m2" / "split.json").read_text())
    old_split = json.loads((task_splits / f"{legacy[:16]}-m2" / "split.json").read_text())
    assert split["data_fingerprint"] == new and old_split["data_fingerprint"] == legacy
    assert (split["test_patients"], split["pool_strata"]) == (old_split["test_patients"], old_split["pool_strata"])
    report = verify(workdir / "splits", workdir / "cache" / "slices")
    assert report.problems == [] and report.counted == report.manifests  # the moved cache still counts the old ones

    third = run_cli(*run_args(workdir, data))  # migrated once: a further run says nothing of it
    assert "0 to run" in third.stderr
