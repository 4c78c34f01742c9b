"""The CLI end to end on a tiny configuration, as a user would run it."""
import csv
import io
import json
import math
from pathlib import Path

import numpy as np
import pytest

from benchmark.evaluation.profiles import DEMO_STEPS, DEMO_TRAINING
from tests.cli_helpers import run_cli

TASK = "phantom-body-region"


@pytest.fixture(scope="module")
def finished_run(tiny_phantom, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("work")
    args = ("run", "--workdir", str(workdir), "--device", "cpu", "--scales", "1,0.5", "--seeds", "42,1",
            "--tasks", TASK, "--checkpoints", "random", "--data", f"{TASK}={tiny_phantom / 'dicom'}",
            "--protocols", "linear,finetune")
    first = run_cli(*args)
    return workdir, args, first


def results_of(workdir: Path) -> dict[str, dict]:
    return {p.name: json.loads(p.read_text()) for p in sorted((workdir / "results").rglob("*.json"))}


def test_run_writes_every_job_and_prints_the_html_path_last(finished_run):
    workdir, _, first = finished_run
    index = Path(first.stdout.strip().splitlines()[-1])
    assert index == workdir / "site" / "index.html" and index.is_file()
    html = index.read_text()
    assert "random" in html and TASK in html
    results = results_of(workdir)
    assert len(results) == 1 * 1 * 2 * 2 * 2  # checkpoints x tasks x protocols x scales x seeds
    assert {(r["job"]["protocol"], r["job"]["scale"], r["job"]["seed"]) for r in results.values()} == {
        (p, scale, seed) for p in ("linear", "finetune") for scale in (1.0, 0.5) for seed in (42, 1)}


def test_results_record_the_cases_actually_used_and_their_manifests(finished_run):
    """Every protocol at every scale trains on exactly the cases its budget manifest names."""
    workdir, _, _ = finished_run
    for result in results_of(workdir).values():
        budget = json.loads(Path(result["splits"]["budget_manifest"]).read_text())
        split = json.loads(Path(result["splits"]["split_manifest"]).read_text())
        assert result["counts"]["train_cases"] == budget["counts"]["train_cases"] > 0
        assert result["counts"]["val_cases"] == budget["counts"]["val_cases"] > 0
        assert result["counts"]["test_cases"] == split["counts"]["test_cases"] > 0
        assert budget["split_sha256"] == result["splits"]["split_sha256"]
        prov = result["provenance"]
        for key in ("ctbench_version", "git", "packages", "device", "precision", "batch_size", "checkpoint_sha256",
                    "task_version", "split_sha256", "wall_time_s"):
            assert key in prov
        assert prov["checkpoint_sha256"] == result["job"]["checkpoint_sha256"]
        assert 0 <= result["main_metric"]["value"] <= 1
        assert prov["precision"] == "fp32" and prov["device"] == "cpu"
        hyper, counts = result["hyperparameters"], result["counts"]
        if result["job"]["protocol"] == "linear":
            assert "C" in hyper and counts["train_cases_seen"] == counts["train_cases"]
        else:  # the demo's budget: its epochs, stopped at the task's step budget
            recipe = hyper["recipe"]
            steps_per_epoch = math.ceil(counts["train_cases"] / recipe["batch_size"])
            assert recipe["max_steps"] == DEMO_STEPS[TASK] and recipe["epochs"] == DEMO_TRAINING["epochs"]
            assert hyper["steps"] == min(recipe["max_steps"], recipe["epochs"] * steps_per_epoch)
            assert hyper["selection"] == "val"
            assert counts["train_cases_seen"] == min(counts["train_cases"], hyper["steps"] * recipe["batch_size"])


def test_smaller_budgets_use_fewer_training_cases(finished_run):
    workdir, _, _ = finished_run
    used = {(r["job"]["scale"], r["job"]["seed"]): r["counts"]["train_cases"] + r["counts"]["val_cases"]
            for r in results_of(workdir).values() if r["job"]["protocol"] == "linear"}
    assert used[(0.5, 42)] < used[(1.0, 42)]
    assert used[(1.0, 42)] == used[(1.0, 1)]  # the whole pool, whatever the seed


def test_csv_export_has_the_exact_header_and_one_row_per_job_and_metric(finished_run):
    workdir, _, _ = finished_run
    out = run_cli("results", "export", "--workdir", str(workdir), "--format", "csv").stdout
    rows = list(csv.reader(io.StringIO(out)))
    assert rows[0] == ["checkpoint", "task", "task_version", "protocol", "scale", "seed", "metric", "value"]
    body = rows[1:]
    assert len(body) == 8 * 3  # jobs x metrics (accuracy, balanced_accuracy, auc)
    assert {r[5] for r in body} == {"42", "1"}
    assert all(0 <= float(r[7]) <= 1 for r in body)


def test_rerun_skips_finished_jobs_and_leaves_results_untouched(finished_run):
    workdir, args, _ = finished_run
    before = {p: p.read_bytes() for p in (workdir / "results").rglob("*.json")}
    again = run_cli(*args)
    assert "0 to run" in again.stderr
    assert {p: p.read_bytes() for p in (workdir / "results").rglob("*.json")} == before


def test_a_deleted_result_is_recomputed_with_the_same_numbers(finished_run):
    workdir, args, _ = finished_run
    victim = sorted((workdir / "results").rglob("*.json"))[0]
    old = json.loads(victim.read_text())
    victim.unlink()
    again = run_cli(*args)
    assert "1 to run" in again.stderr
    new = json.loads(victim.read_text())
    assert new["metrics"] == old["metrics"] and new["hyperparameters"] == old["hyperparameters"]


def test_rescore_recomputes_every_metric_from_the_saved_predictions(finished_run):
    workdir, _, _ = finished_run
    check = run_cli("rescore", "--workdir", str(workdir), "--check")
    assert "8 result(s) unchanged, 0 differ" in check.stderr
    victim = sorted((workdir / "results").rglob("*.json"))[-1]
    result = json.loads(victim.read_text())
    true_accuracy = result["metrics"]["accuracy"]
    result["metrics"]["accuracy"] = 0.123  # a stored number that does not follow from the predictions
    victim.write_text(json.dumps(result))
    tampered = run_cli("rescore", "--workdir", str(workdir), "--check", check=False)
    assert tampered.returncode == 1 and f"accuracy 0.123 -> {true_accuracy:.6g}" in tampered.stderr
    assert json.loads(victim.read_text())["metrics"]["accuracy"] == 0.123  # --check never writes
    run_cli("rescore", "--workdir", str(workdir))
    fixed = json.loads(victim.read_text())
    assert fixed["metrics"]["accuracy"] == true_accuracy and fixed["rescored"]["previous_metrics"]["accuracy"] == 0.123
    assert "8 result(s) unchanged" in run_cli("rescore", "--workdir", str(workdir), "--check").stderr


def test_leaderboard_rebuild_is_byte_identical(finished_run):
    workdir, _, _ = finished_run
    site = workdir / "site"
    run_cli("leaderboard", "build", "--workdir", str(workdir))
    first = {p.relative_to(site): p.read_bytes() for p in site.rglob("*") if p.is_file()}
    run_cli("leaderboard", "build", "--workdir", str(workdir))
    assert {p.relative_to(site): p.read_bytes() for p in site.rglob("*") if p.is_file()} == first
    assert {"index.html", "analysis.html", "leaderboard.csv", "leaderboard.json", "app.js", "style.css",
            f"tasks/{TASK}.v1.html", "checkpoints/random.html"} <= {str(p) for p in first}
    assert b"data:image/svg+xml;base64," in first[Path(f"tasks/{TASK}.v1.html")]  # the data-scale curve


def test_an_imported_csv_appears_beside_local_results_with_its_statistics(finished_run, tmp_path):
    """A paper's published per-seed runs, imported: marked with their source, compared with scipy's numbers."""
    workdir, _, _ = finished_run
    published = tmp_path / "published.csv"
    values = [0.91, 0.93, 0.95]
    rows = ["checkpoint,task,task_version,protocol,scale,seed,metric,value,task_domain,checkpoint_domain,source"]
    rows += [f"paper-radnet,{TASK},1,linear,1,{seed},accuracy,{v},ct,ct,Study Table 2"
             for seed, v in zip((42, 1, 2), values)]
    published.write_text("\n".join(rows) + "\n")
    run_cli("results", "import", str(published), "--workdir", str(workdir))
    site = run_cli("leaderboard", "build", "--workdir", str(workdir))
    checkpoint_page = (Path(site.stdout.strip()).parent / "checkpoints" / "paper-radnet.html").read_text()
    assert "imported" in checkpoint_page and "Study Table 2" in checkpoint_page
    table = list(csv.DictReader(io.StringIO(run_cli("leaderboard", "export", "--workdir", str(workdir)).stdout)))
    assert list(table[0]) == ["checkpoint", "task", "protocol", "scale", "metric", "n", "mean", "std", "ci_low",
                              "ci_high", "baseline", "delta_pct", "p_welch"]
    mine = next(r for r in table if r["checkpoint"] == "paper-radnet" and r["metric"] == "accuracy"
                and r["baseline"] == "random")
    baseline = [r["metrics"]["accuracy"] for r in results_of(workdir).values()
                if r["job"]["protocol"] == "linear" and r["job"]["scale"] == 1.0]
    from scipy import stats

    assert int(mine["n"]) == 3 and abs(float(mine["mean"]) - 0.93) < 1e-6
    assert abs(float(mine["delta_pct"]) - (0.93 / np.mean(baseline) - 1) * 100) < 1e-3
    expected_p = stats.ttest_ind(values, baseline, equal_var=False).pvalue
    assert (mine["p_welch"] == "" and not np.isfinite(expected_p)) or abs(float(mine["p_welch"]) - expected_p) < 1e-6


def test_compare_bootstraps_the_difference_over_test_patients(finished_run):
    workdir, _, _ = finished_run
    out = run_cli("leaderboard", "compare", "random", "random", "--task", TASK, "--protocol", "finetune",
                  "--resamples", "50", "--workdir", str(workdir)).stdout
    result = json.loads(out)  # a checkpoint against itself: no difference, on every resample
    assert result["difference"] == result["ci_low"] == result["ci_high"] == 0 and result["seeds"] == [1, 42]
    assert result["n_patients"] > 0 and result["n_valid"] == 50


def test_a_missing_data_folder_is_one_line_and_exit_code_2(tmp_path):
    proc = run_cli("run", "--workdir", str(tmp_path), "--tasks", TASK, "--data", f"{TASK}={tmp_path / 'nope'}",
                   check=False)
    assert proc.returncode == 2
    assert not (tmp_path / "checkpoints").exists()  # refused before any checkpoint was made
    assert proc.stderr.strip().splitlines()[-1].startswith("ctbench: error: ")
    assert "nope" in proc.stderr and "Traceback" not in proc.stderr


def test_an_unknown_task_names_the_known_ones(tmp_path):
    proc = run_cli("run", "--workdir", str(tmp_path), "--tasks", "nope", check=False)
    assert proc.returncode == 2 and TASK in proc.stderr and "Traceback" not in proc.stderr
