"""`ctbench run` with no arguments: the embedded default, as a new user first meets it."""
import json
import os
from pathlib import Path

from benchmark.catalog.registries import checkpoint_registry, task_registry
from benchmark.core.specs import DEFAULT_PROTOCOLS
from benchmark.evaluation.protocols import PROTOCOLS
from tests.cli_helpers import REPO, run_cli


def test_default_run_covers_every_checkpoint_and_embedded_task_then_resumes(tmp_path):
    """With two workers, as `make demo` runs it on two cores; the rerun then finds every job done.

    One of the demo's three seeds: every embedded task, checkpoint, protocol and scale still runs,
    at a third of the CI time (the full default is `make demo`, and `make bench` times it).
    """
    env = {"CTBENCH_WORKDIR": str(tmp_path / "from-env")}
    default_before = _default_workdir_state()  # `make demo` may have filled it before the tests run
    first = run_cli("run", "--jobs", "2", "--seeds", "42", env=env)
    index = Path(first.stdout.strip().splitlines()[-1])
    assert index == tmp_path / "from-env" / "site" / "index.html"
    html = index.read_text()
    embedded = [e.name for e in task_registry() if e.obj.spec.embedded]
    pairs = [(t, p) for t in embedded for p in DEFAULT_PROTOCOLS
             if task_registry().get(t).spec.kind in PROTOCOLS.get(p).kinds]
    assert {"phantom-body-region", "phantom-lesion-present", "natural-photo-patches",
            "phantom-liver-segmentation"} <= {t for t, _ in pairs}
    assert ("phantom-liver-segmentation", "seg-finetune") in pairs and ("phantom-body-region", "finetune") in pairs
    demo = [e.name for e in checkpoint_registry() if e.obj.demo]
    assert {"random", "demo-ct-simclr", "demo-natural-simclr", "random-vit"} <= set(demo)
    for task, _ in pairs:
        assert f'data-task="{task}"' in html
    for checkpoint in demo:
        assert f'<a href="checkpoints/{checkpoint}.html">{checkpoint}</a>' in html
    assert "Domain transfer" in html and 'id="overview"' in html
    site = index.parent
    assert b"data:image/svg+xml;base64," in (site / "tasks" / "phantom-body-region.v1.html").read_bytes()
    analysis = (site / "analysis.html").read_text()
    assert "phantom-body-region" in analysis and analysis.count("data:image/svg+xml;base64,") >= 4
    assert "feature reuse: CKA(pretrained, finetuned)" in analysis and "who knew what" in analysis
    results = [json.loads(p.read_text()) for p in (tmp_path / "from-env" / "results").rglob("*.json")]
    n_results = len(results)
    assert n_results == len(pairs) * len(demo) * 3  # each task's 3 default scales, one seed
    assert {r["job"]["seed"] for r in results} == {42}
    for name in ("demo-ct-simclr", "demo-natural-simclr"):  # pretrained once, with a loss curve on record
        sidecar = json.loads(next((tmp_path / "from-env" / "checkpoints").glob(f"{name}-*.json")).read_text())
        assert sidecar["checkpoint"]["demo"] and len(sidecar["loss_per_epoch"]) > 1
    _positive_controls_hold(results)
    again = run_cli("run", "--seeds", "42", env=env)
    assert f"{n_results} already done, 0 to run" in again.stderr
    assert again.stdout.strip().splitlines()[-1] == str(index)
    assert _default_workdir_state() == default_before  # the env var, not the default, was used


def _positive_controls_hold(results: list[dict]) -> None:
    """The embedded default as an experiment (issue 22): at 100 % of the labels something learns the
    lesions (Dice >= 0.3, lesion-present AUC >= 0.8), and finetuning the pretrained references reaches
    their linear probe on body region (within 0.02 on this one seed; the README gives three seeds)."""
    full = {(r["job"]["task"], r["job"]["protocol"], r["job"]["checkpoint"]): r["metrics"]
            for r in results if r["job"]["scale"] == 1.0}

    def best(task: str, protocol: str, metric: str) -> float:
        return max(m[metric] for (t, p, _), m in full.items() if (t, p) == (task, protocol))

    assert best("phantom-liver-segmentation", "seg-finetune", "dice_lesion") >= 0.3
    assert best("phantom-lesion-present", "finetune", "auc") >= 0.8
    for name in ("demo-ct-simclr", "demo-natural-simclr"):
        finetuned = full[("phantom-body-region", "finetune", name)]["accuracy"]
        assert finetuned >= full[("phantom-body-region", "linear", name)]["accuracy"] - 0.02, name


def _default_workdir_state() -> dict[str, int] | None:
    """Every file under ./ctbench-work with its mtime (None when there is none): a run that used it
    would add or rewrite some."""
    root = REPO / "ctbench-work"
    if not os.path.exists(root):
        return None
    return {str(p.relative_to(root)): p.stat().st_mtime_ns for p in root.rglob("*") if p.is_file()}
