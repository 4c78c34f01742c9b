"""`ctbench run` with no arguments: the embedded default, as a new user first meets it."""
import json
import os
from pathlib import Path

from benchmark.plugins import checkpoint_registry, task_registry
from benchmark.protocols import PROTOCOLS
from tests.cli_helpers import REPO, run_cli


def test_default_run_covers_every_checkpoint_and_embedded_task_then_resumes(tmp_path):
    env = {"CTBENCH_WORKDIR": str(tmp_path / "from-env")}
    first = run_cli("run", env=env)
    index = Path(first.stdout.strip().splitlines()[-1])
    assert index == tmp_path / "from-env" / "site" / "index.html"
    html = index.read_text()
    embedded = [e.name for e in task_registry() if e.obj.spec.embedded]
    linear = PROTOCOLS.get("linear")
    evaluated = [t for t in embedded if task_registry().get(t).spec.kind in linear.kinds]
    assert {"phantom-body-region", "phantom-lesion-present", "natural-photo-patches"} <= set(evaluated)
    skipped = sorted(set(embedded) - set(evaluated))
    assert all(f"skipping {t} under linear" in first.stderr for t in skipped)
    demo = [e.name for e in checkpoint_registry() if e.obj.demo]
    assert {"random", "demo-ct-simclr", "demo-natural-simclr"} <= set(demo)
    for task in evaluated:
        assert f'data-task="{task}"' in html
        for checkpoint in demo:
            assert f"<tr><td>{checkpoint}</td>" in html
    n_results = len(list((tmp_path / "from-env" / "results").rglob("*.json")))
    assert n_results == len(evaluated) * len(demo) * 3 * 4  # 3 default scales, 4 seeds
    for name in ("demo-ct-simclr", "demo-natural-simclr"):  # pretrained once, with a loss curve on record
        sidecar = json.loads(next((tmp_path / "from-env" / "checkpoints").glob(f"{name}-*.json")).read_text())
        assert sidecar["checkpoint"]["demo"] and len(sidecar["loss_per_epoch"]) > 1
    again = run_cli("run", env=env)
    assert f"{n_results} already done, 0 to run" in again.stderr
    assert again.stdout.strip().splitlines()[-1] == str(index)
    assert not os.path.exists(REPO / "ctbench-work")  # the env var, not the default, was used
