"""Everything ctbench writes takes the process umask, as a plain open() would (a group sharing a
workdir reads it), and the temp folders of killed writers are swept, never a live writer's."""
import os
import signal
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from benchmark.core.workdir import Workdir
from benchmark.execution.jobstate import sweep_partial_writes
from tests.cli_helpers import REPO

# Writes one of each kind of output into sys.argv[1], in a process of its own: the umask is
# process-wide, so setting it in pytest's process would race every other thread there.
WRITERS = textwrap.dedent("""
    import sys
    from pathlib import Path

    import numpy as np
    import torch

    from benchmark.core.atomic import atomic_open, write_json, write_npz
    from benchmark.core.specs import Preprocessing, TaskSpec
    from benchmark.data.slices import load_slices
    from benchmark.data.task import Case, Task
    from benchmark.synthetic.natural import NaturalConfig, generate_natural
    from benchmark.synthetic.phantom import PhantomConfig, generate_dataset

    class Tiny(Task):
        spec = TaskSpec(name="tiny", version="1", domain="ct", kind="classification", class_names=["a", "b"],
                        metrics=["auc"], main_metric="auc", preprocessing=Preprocessing(size=8))

        def cases(self, root):
            for i in range(6):
                yield Case(f"c{i}", f"p{i % 3}", np.full((8, 8), 10.0 * i, np.float32), i % 2)

    out = Path(sys.argv[1])
    with atomic_open(out / "atomic" / "plain.txt") as handle:
        handle.write("x")
    write_json(out / "atomic" / "result.json", {"a": 1})
    write_npz(out / "atomic" / "predictions.npz", y=np.arange(3))
    with atomic_open(out / "atomic" / "state.pt", "wb") as handle:
        torch.save({"w": torch.zeros(2)}, handle)
    load_slices(Tiny(), out, Preprocessing(size=8), out / "cache" / "slices", "f" * 64)
    generate_dataset(out / "data" / "phantom", PhantomConfig(n_patients=1, n_corpus_patients=0, matrix=32,
                                                             slices_per_series=1, n_lits_volumes=1, lits_slices=2),
                     workers=1)
    generate_natural(out / "data" / "natural", NaturalConfig(grid=2, crops_per_block=1, crop_px=16, n_corpus=2))
""")


@pytest.mark.parametrize("umask", [0o022, 0o002])
def test_every_file_and_folder_written_takes_the_umask(tmp_path, umask):
    script = tmp_path / "writers.py"
    script.write_text(WRITERS)
    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, str(script), str(out)], cwd=REPO, umask=umask, capture_output=True,
                          text=True, timeout=600, env={**os.environ, "TQDM_DISABLE": "1"})
    assert proc.returncode == 0, proc.stderr
    written = sorted(out.rglob("*"))
    modes = {path.relative_to(out).as_posix(): stat.S_IMODE(path.stat().st_mode) for path in written}
    wanted = {path.relative_to(out).as_posix(): (0o777 if path.is_dir() else 0o666) & ~umask for path in written}
    assert modes == wanted
    names = set(modes)
    assert {"atomic/state.pt", "atomic/result.json", "atomic/predictions.npz", "data/phantom/phantom.json",
            "data/natural/natural.json"} <= names
    cache = next(p for p in out.glob("cache/slices/tiny@1/*") if p.is_dir())
    assert {"images.npy", "meta.json"} <= {p.name for p in cache.iterdir()}
    assert not [name for name in names if ".tmp" in name]  # every temp file and folder went


def test_a_whole_run_under_umask_002_leaves_group_writable_files_only(tmp_path):
    """Every file and folder `ctbench run` makes (data cache, hashes, splits, features, checkpoint,
    results, logs, locks, site) takes the umask: one writer that set its own mode would show here."""
    from tests.fixtures.datasets.nifti_ct import write_lits

    data, workdir = write_lits(tmp_path / "LITS17", n_volumes=6), tmp_path / "work"
    task = "lits-tumour-present"
    argv = ["run", "--workdir", str(workdir), "--device", "cpu", "--scales", "1", "--seeds", "42", "--tasks", task,
            "--checkpoints", "random", "--data", f"{task}={data}", "--protocols", "linear", "--analysis-task", "none"]
    proc = subprocess.run([sys.executable, "-m", "benchmark.cli", *argv], cwd=REPO, umask=0o002, capture_output=True,
                          text=True, timeout=600, env={**os.environ, "TQDM_DISABLE": "1"})
    assert proc.returncode == 0, proc.stderr
    written = sorted(workdir.rglob("*"))
    modes = {p.relative_to(workdir).as_posix(): stat.S_IMODE(p.stat().st_mode) for p in written}
    assert modes == {p.relative_to(workdir).as_posix(): 0o775 if p.is_dir() else 0o664 for p in written}
    assert {"site/index.html", "jobs/grid.json"} <= set(modes) and any(n.startswith("results/") for n in modes)
    assert any(n.startswith("cache/file-hashes/") for n in modes) and any(n.endswith("/images.npy") for n in modes)


WRITER = textwrap.dedent("""
    import sys
    from pathlib import Path

    from benchmark.core.atomic import temp_folder

    with temp_folder(Path(sys.argv[1])) as tmp:
        (tmp / "part").mkdir()
        (tmp / "part" / "volume-0.nii").write_bytes(b"half a volume")
        print(tmp, flush=True)
        sys.stdin.readline()
""")


def start_writer(target: Path) -> tuple[subprocess.Popen, Path]:
    """A process filling a temp folder for ``target``, stopped halfway; and that folder."""
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(target)], cwd=REPO, text=True,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    return proc, Path(proc.stdout.readline().strip())


def test_the_sweep_removes_the_temp_folders_of_killed_writers_only(tmp_path):
    workdir = Workdir(tmp_path / "work")
    slices = workdir.slices / "phantom-liver@1"
    writers = {"dead data": start_writer(workdir.data / "phantom-0123"),
               "dead cache": start_writer(slices / "8cbb45fdb310de6f7e51"),
               "live": start_writer(slices / "0000aaaa1111bbbb2222")}
    for name in ("dead data", "dead cache"):
        writers[name][0].send_signal(signal.SIGKILL)
        writers[name][0].wait()
    folders = {name: folder for name, (_, folder) in writers.items()}
    assert all((folder / "part" / "volume-0.nii").is_file() for folder in folders.values())
    # what no temp_folder made is never touched: a legacy pid-named folder, and a pattern without its lock
    legacy = workdir.data / "natural-abcd.tmp-4242"
    lockless = slices / ".feedbeef.1234abcd.tmpdir"
    for folder in (legacy, lockless):
        folder.mkdir(parents=True)
    orphan = workdir.root / "cache" / "file-hashes" / ".0a1b.json.a1b2c3d4.tmp"  # a killed write_json's, unlocked
    orphan.parent.mkdir(parents=True)
    orphan.write_text('{"files": {"vol')
    said = []
    sweep_partial_writes(workdir, said.append)
    assert said == ["removed 1 partial file(s) and 2 partial folder(s) that a killed run left"]
    assert not orphan.exists()
    for name in ("dead data", "dead cache"):
        assert not folders[name].exists() and not Path(f"{folders[name]}.lock").exists()
    assert (folders["live"] / "part" / "volume-0.nii").is_file() and legacy.is_dir() and lockless.is_dir()
    live = writers["live"][0]
    live.communicate("go\n", timeout=60)
    assert live.returncode == 0
    assert not folders["live"].exists() and not Path(f"{folders['live']}.lock").exists()
    sweep_partial_writes(workdir, said.append)
    assert len(said) == 1
