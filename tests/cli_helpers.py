"""Running the ctbench CLI from tests, and reading back what a run stored."""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
TASK = "phantom-body-region"


def run_cli(*args: str, env: dict | None = None, check: bool = True) -> subprocess.CompletedProcess:
    """The CLI in a subprocess, as a user runs it: real exit codes, real stdout/stderr."""
    full_env = {**os.environ, "PYTHONUNBUFFERED": "1", "TQDM_DISABLE": "1", **(env or {})}
    proc = subprocess.run([sys.executable, "-m", "benchmark.cli", *args], capture_output=True, text=True,
                          env=full_env, cwd=REPO, timeout=900)
    if check and proc.returncode != 0:
        raise AssertionError(f"ctbench {' '.join(args)} exited {proc.returncode}\n{proc.stdout}\n{proc.stderr}")
    return proc


def grid_args(workdir: Path, phantom: Path, protocols="linear,finetune", seeds="42,1") -> list[str]:
    """`ctbench run` on a tiny grid: the phantom body-region task, the random checkpoint, one scale."""
    return ["run", "--workdir", str(workdir), "--device", "cpu", "--scales", "1", "--seeds", seeds, "--tasks", TASK,
            "--checkpoints", "random", "--data", f"{TASK}={phantom / 'dicom'}", "--protocols", protocols,
            "--analysis-task", "none"]


def results(workdir: Path) -> dict[str, dict]:
    """Every result by job id, each parsed (a torn or partial file fails here)."""
    found = {}
    for path in sorted((workdir / "results").rglob("*.json")):
        payload = json.loads(path.read_text())
        found[payload["job"]["job_id"]] = payload
    return found


def numbers(workdir: Path) -> dict[str, tuple]:
    """Metrics, hyperparameters and every saved prediction's bytes, per job: what must not depend
    on how the run went (unlike its wall time, host, pid or paths)."""
    out = {}
    for job_id, payload in results(workdir).items():
        with np.load(next((workdir / "results").rglob(f"{job_id}.predictions.npz"))) as saved:
            arrays = {key: saved[key].tobytes() for key in saved.files}
        out[job_id] = (payload["metrics"], json.dumps(payload["hyperparameters"], sort_keys=True), arrays)
    return out


def ran_count(stderr: str) -> int:
    """The N of the run's "ran N job(s)" line."""
    line = next(line for line in stderr.splitlines() if line.startswith("ran "))
    return int(line.split()[1])


def status(workdir: Path) -> dict:
    return json.loads(run_cli("status", "--workdir", str(workdir), "--json").stdout)
