"""Every public-dataset adapter through the CLI, each on a tiny fixture in its real layout:
listed, validated, split, evaluated and verified, in one workdir, as a user would."""
import json
from pathlib import Path

import pytest

from tests.cli_helpers import run_cli
from tests.fixtures.datasets.cross_domain import write_brats2020, write_chestxray14, write_rsna_ich
from tests.fixtures.datasets.ct_2d import write_deeplesion, write_luna16, write_medmnist
from tests.fixtures.datasets.nifti_ct import MSD_LAYOUTS, write_kits19, write_kits21, write_lits, write_msd

MSD_TASKS = {"Task03_Liver": "msd-liver", "Task06_Lung": "msd-lung", "Task07_Pancreas": "msd-pancreas",
             "Task08_HepaticVessel": "msd-hepaticvessel", "Task09_Spleen": "msd-spleen", "Task10_Colon": "msd-colon"}


@pytest.fixture(scope="module")
def datasets(tmp_path_factory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("datasets")
    lits = write_lits(out / "lits")
    roots = {"lits-liver-segmentation": lits, "lits-tumour-present": lits,
             "kits19-segmentation": write_kits19(out / "kits19"), "kits21-segmentation": write_kits21(out / "kits21"),
             "organamnist": write_medmnist(out / "medmnist"), "deeplesion-lesion-type": write_deeplesion(out / "dl"),
             "luna16-nodule-patch": write_luna16(out / "luna16"), "rsna-ich": write_rsna_ich(out / "rsna"),
             "brats2020-segmentation": write_brats2020(out / "brats"), "chestxray14": write_chestxray14(out / "cxr")}
    roots["organcmnist"] = roots["organsmnist"] = roots["organamnist"]
    for folder, task in MSD_TASKS.items():
        assert folder in MSD_LAYOUTS
        roots[task] = write_msd(out / "msd", folder)
    return roots


@pytest.fixture(scope="module")
def evaluated(datasets, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("work")
    data = [arg for task, root in datasets.items() for arg in ("--data", f"{task}={root}")]
    run = run_cli("run", "--workdir", str(workdir), "--tasks", ",".join(datasets), *data, "--checkpoints", "random",
                  "--protocols", "linear,seg-linear", "--scales", "1", "--seeds", "42", "--device", "cpu")
    return workdir, run


def test_every_adapter_is_listed_with_its_source(datasets):
    listing = run_cli("tasks", "list").stdout
    for task in datasets:
        assert any(line.split()[0] == task and "built-in module tasks." in line for line in listing.splitlines()), task


def test_every_fixture_validates_and_a_broken_one_is_named(datasets, tmp_path):
    for task in ("msd-spleen", "chestxray14", "rsna-ich"):
        ok = run_cli("tasks", "validate", task, "--data", str(datasets[task]))
        assert ok.returncode == 0 and "ok:" in ok.stderr
    broken = next((datasets["msd-spleen"] / "labelsTr").glob("*.nii.gz"))
    saved = broken.read_bytes()
    broken.write_bytes(saved[:200])  # a truncated download
    try:
        proc = run_cli("tasks", "validate", "msd-spleen", "--data", str(datasets["msd-spleen"]), check=False)
    finally:
        broken.write_bytes(saved)
    assert proc.returncode == 2 and str(broken) in proc.stdout and "Traceback" not in proc.stderr


def test_one_run_evaluates_every_adapter_and_keeps_official_test_sets(evaluated, datasets):
    workdir, run = evaluated
    results = [json.loads(p.read_text()) for p in (workdir / "results").rglob("*.json")]
    assert {r["job"]["task"] for r in results} == set(datasets)
    for result in results:
        assert result["main_metric"]["value"] is not None, result["job"]["job_id"]
        assert result["counts"]["train_cases"] > 0 and result["counts"]["test_cases"] > 0
    official = {r["job"]["task"] for r in results
                if json.loads(Path(r["splits"]["split_manifest"]).read_text()).get("official_split")}
    assert {"organamnist", "deeplesion-lesion-type", "chestxray14"} <= official
    html = (workdir / "site" / "index.html").read_text()
    assert all(f'data-task="{task}"' in html for task in datasets)


def test_splits_make_and_verify_on_the_evaluated_workdir(evaluated, datasets):
    workdir, _ = evaluated
    made = run_cli("splits", "make", "msd-liver", "--data", str(datasets["msd-liver"]), "--workdir", str(workdir),
                   "--seeds", "42")
    assert "scale-0.01.json" in made.stdout and "scale-0.5.json" in made.stdout
    verified = run_cli("splits", "verify", "--workdir", str(workdir))
    assert verified.returncode == 0 and ": 0 problem(s)" in verified.stderr
