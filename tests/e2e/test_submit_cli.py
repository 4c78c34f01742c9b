"""`ctbench submit` and `ctbench checkpoints inspect` as a researcher uses them."""
import json
from pathlib import Path

import pytest

from tests.cli_helpers import run_cli
from tests.fixtures.checkpoints import source_model, write_malicious, write_solo_learn, write_timm_pth

TASK = "phantom-body-region"


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    out = tmp_path_factory.mktemp("ckpts")
    model = source_model("resnet18", seed=7)
    return {"solo": write_solo_learn(model, out), "timm": write_timm_pth(model, out), "dir": out, "model": model}


@pytest.fixture(scope="module")
def submitted(files, tiny_phantom, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("work")
    args = ("submit", str(files["solo"]), "--name", "my-solo", "--arch", "resnet18", "--pretraining-domain", "ct",
            "--tasks", TASK, "--task-data", f"{TASK}={tiny_phantom / 'dicom'}", "--scales", "1", "--seeds", "42",
            "--protocols", "linear", "--workdir", str(workdir))
    return workdir, args, run_cli(*args)


def test_submit_evaluates_records_and_ranks_the_checkpoint(submitted):
    workdir, _, first = submitted
    index = Path(first.stdout.strip().splitlines()[-1])
    assert "my-solo" in index.read_text()
    spec = json.loads((workdir / "submissions" / "my-solo.json").read_text())
    assert spec["format"] == "solo-learn" and spec["method"] and len(spec["sha256"]) == 64
    results = list((workdir / "results" / "my-solo").rglob("*.json"))
    assert len(results) == 1
    load = json.loads(results[0].read_text())["checkpoint_load"]
    assert load["format"] == "solo-learn" and load["keys"]["missing"] == [] and load["keys"]["unexpected"] == []


def test_resubmitting_the_same_file_reuses_finished_jobs(submitted):
    _, args, _ = submitted
    again = run_cli(*args)
    assert "already submitted" in again.stderr and "1 already done, 0 to run" in again.stderr


def test_the_same_file_under_another_name_is_refused(submitted, files):
    workdir, _, _ = submitted
    proc = run_cli("submit", str(files["solo"]), "--name", "other", "--arch", "resnet18", "--workdir", str(workdir),
                   check=False)
    assert proc.returncode == 2 and "already submitted as 'my-solo'" in proc.stderr


def test_a_wrong_architecture_is_refused_listing_the_keys(files, tmp_path):
    proc = run_cli("submit", str(files["timm"]), "--name", "wrong", "--arch", "resnet50", "--workdir", str(tmp_path),
                   check=False)
    assert proc.returncode == 3 and "missing" in proc.stderr and "layer1.0.conv3.weight" in proc.stderr
    assert "Traceback" not in proc.stderr and not (tmp_path / "submissions").exists()


def test_a_malicious_pickle_is_refused_and_never_runs(files, tmp_path):
    marker = tmp_path / "pwned"
    zipped, _ = write_malicious(files["model"], tmp_path, marker)
    proc = run_cli("submit", str(zipped), "--name", "evil", "--arch", "resnet18", "--workdir", str(tmp_path / "w"),
                   check=False)
    assert proc.returncode == 3 and "refused" in proc.stderr and "Traceback" not in proc.stderr
    assert not marker.exists()


def test_inspect_reports_every_backbone_key_matched(files):
    report = json.loads(run_cli("checkpoints", "inspect", str(files["solo"]), "--json").stdout)
    assert report["format"] == "solo-learn" and report["arch"] == "resnet18"
    assert report["keys"]["missing"] == [] and report["keys"]["unexpected"] == [] and report["finite"]
    text = run_cli("checkpoints", "inspect", str(files["timm"])).stdout
    assert "0 missing, 0 unexpected" in text
