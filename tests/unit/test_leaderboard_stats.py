import csv
import io
import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats as scipy_stats

from benchmark.cli import main as cli
from benchmark.core.specs import TaskSpec
from benchmark.results.job import Job
from benchmark.results.schema import CheckpointRecord
from benchmark.results.store import ResultStore
from leaderboard.aggregate import load, summarize, tidy
from leaderboard.stats import (
    EXPORT_COLUMNS,
    baselines,
    bootstrap_checkpoints,
    compare,
    leaderboard_table,
    overall,
    paired_bootstrap,
    relative_delta_pct,
    significance_tier,
    welch_p,
    write_table,
)

TASK = TaskSpec(name="t", version="1", domain="ct", kind="classification", class_names=["no", "yes"],
                metrics=["accuracy", "auc"], main_metric="accuracy")
DOMAINS = {"imagenet": "natural", "random": "none", "mine": "ct", "other": "ct", "demo-natural-simclr": "natural"}


@pytest.fixture
def ctbench():
    """``main`` in-process: parser, error contract, exit code."""
    return lambda *argv: cli.main(list(argv))


def frame_of(values: dict, task="t", scale=1.0, metric="accuracy") -> pd.DataFrame:
    """{checkpoint: per-seed values} -> a tidy frame of one task/protocol/scale."""
    rows = [{"checkpoint": ck, "task": task, "task_version": "1", "protocol": "linear", "scale": scale, "seed": seed,
             "metric": metric, "value": v, "imported": False, "source": ""}
            for ck, vs in values.items() for seed, v in enumerate(vs)]
    return pd.DataFrame(rows)


ROLES = {"imagenet": "natural", "demo-natural-simclr": "natural", "random": "random", "random-resnet50": "random"}


def entries(*names):
    return [CheckpointRecord(name=n, pretraining_domain=DOMAINS.get(n, "ct"), baseline_role=ROLES.get(n)) for n in names]


def test_delta_and_welch_p_match_scipy_on_known_inputs():
    mine, imagenet, rand = [0.80, 0.85, 0.95], [0.70, 0.80, 0.90], [0.50, 0.55, 0.52]
    table = compare(frame_of({"mine": mine, "imagenet": imagenet, "random": rand}),
                    entries("mine", "imagenet", "random"), {("t", "1"): {"name": "accuracy", "higher_is_better": True}})
    rows = table[table["checkpoint"] == "mine"].set_index("baseline")
    assert list(rows.index) == ["imagenet", "random"]  # natural before random
    assert rows.loc["imagenet", "delta_pct"] == pytest.approx((np.mean(mine) / np.mean(imagenet) - 1) * 100)
    for baseline, values in (("imagenet", imagenet), ("random", rand)):
        expected = scipy_stats.ttest_ind(mine, values, equal_var=False).pvalue
        assert rows.loc[baseline, "p_welch"] == pytest.approx(expected)
    assert rows.loc["random", "tier"] == "better" and rows.loc["imagenet", "tier"] == "tie"
    assert rows.loc["imagenet", "n"] == 3 and rows.loc["imagenet", "std"] == pytest.approx(np.std(mine, ddof=1))
    assert relative_delta_pct(0.9, 0.0) != relative_delta_pct(0.9, 0.0)  # NaN, not inf


def test_a_baseline_is_never_compared_with_itself_and_a_lonely_cell_keeps_one_empty_row():
    table = compare(frame_of({"imagenet": [0.7, 0.8], "random": [0.5, 0.6]}), entries("imagenet", "random"), {})
    assert table[["checkpoint", "baseline"]].values.tolist() == [["imagenet", "random"], ["random", "imagenet"]]
    alone = compare(frame_of({"mine": [0.7, 0.8]}), entries("mine"), {})
    assert len(alone) == 1 and alone["baseline"].isna().all() and math.isnan(alone["p_welch"][0])
    assert alone["tier"].isna().all() and alone["n"][0] == 2


def test_only_the_same_task_version_is_compared():
    frame = frame_of({"mine": [0.8, 0.9], "imagenet": [0.7, 0.8]})
    frame.loc[frame["checkpoint"] == "imagenet", "task_version"] = "2"
    table = compare(frame, entries("mine", "imagenet"), {})
    assert table["baseline"].isna().all() and len(table) == 2


@pytest.mark.parametrize("a, b", [([0.8], [0.7, 0.8, 0.9]),           # n < 2
                                  ([0.8, 0.8, 0.8], [0.7, 0.7, 0.7]),  # no spread in either (scipy: p = 0)
                                  ([0.8, 0.8], [0.8, 0.8])])           # no spread, equal (scipy: NaN)
def test_welch_p_is_nan_where_the_test_is_undefined_and_that_is_a_tie(a, b):
    assert math.isnan(welch_p(a, b))
    assert significance_tier(welch_p(a, b), np.mean(a), np.mean(b)) == "tie"


@pytest.mark.filterwarnings("ignore:Precision loss")
def test_welch_p_ignores_undefined_seeds_and_keeps_one_constant_group():
    assert welch_p([0.8, float("nan"), 0.9, 0.85], [0.5, 0.5, 0.5]) == pytest.approx(
        scipy_stats.ttest_ind([0.8, 0.9, 0.85], [0.5, 0.5, 0.5], equal_var=False).pvalue)


def test_tiers_follow_p_and_the_metric_direction():
    assert significance_tier(0.01, 0.9, 0.8) == "better"
    assert significance_tier(0.01, 0.7, 0.8) == "worse"
    assert significance_tier(0.01, 0.7, 0.8, higher_is_better=False) == "better"
    assert significance_tier(0.2, 0.9, 0.8) == "tie"
    assert significance_tier(float("nan"), 0.9, 0.1) == "tie"


def test_baseline_choice_is_by_role_first_then_by_domain_and_deterministic():
    assert baselines(entries("mine", "imagenet", "demo-natural-simclr", "random")) == {
        "natural": "imagenet", "random": "random"}
    assert baselines(entries("random-resnet50", "random", "mine")) == {"natural": None, "random": "random"}
    assert baselines(entries("demo-natural-simclr", "mine")) == {"natural": "demo-natural-simclr", "random": None}
    custom = [CheckpointRecord(name="zeta", pretraining_domain="natural"),
              CheckpointRecord(name="alpha", pretraining_domain="natural"),
              CheckpointRecord(name="scratch", pretraining_domain="none")]
    assert baselines(custom) == baselines(custom[::-1]) == {"natural": "alpha", "random": "scratch"}


def test_a_baseline_is_whoever_plays_the_role_whatever_its_name():
    mine = [CheckpointRecord(name="my-ref", pretraining_domain="natural", baseline_role="natural"),
            CheckpointRecord(name="imagenet", pretraining_domain="natural"),  # a spec that plays no part
            CheckpointRecord(name="noise", pretraining_domain="ct", baseline_role="random")]
    assert baselines(mine) == baselines(mine[::-1]) == {"natural": "my-ref", "random": "noise"}


def test_results_written_before_roles_get_the_built_in_ones(tmp_path):
    store = ResultStore(tmp_path)
    write_result(store, "imagenet", 42, 0.7)
    write_result(store, "mine", 42, 0.8)
    results, _ = load(store)
    assert {r.checkpoint.name: r.checkpoint.baseline_role for r in results} == {"imagenet": "natural", "mine": None}


def summary_of(cells: dict) -> pd.DataFrame:
    """{(checkpoint, task, protocol): mean} -> a one-seed-per-cell summary at scale 1."""
    rows = [{"checkpoint": ck, "task": task, "task_version": "1", "protocol": proto, "scale": 1.0, "seed": 0,
             "metric": "m_" + task, "value": v, "imported": False, "source": ""}
            for (ck, task, proto), v in cells.items()]
    return summarize(pd.DataFrame(rows))


def test_borda_on_a_hand_made_table_with_a_lower_is_better_task_and_an_incomplete_entry():
    mains = {("a", "1"): {"name": "m_a", "higher_is_better": True},
             ("b", "1"): {"name": "m_b", "higher_is_better": False}}
    summary = summary_of({
        ("x", "a", "linear"): 0.9, ("y", "a", "linear"): 0.8, ("z", "a", "linear"): 0.8,  # x 2, y 0.5, z 0.5
        ("x", "b", "linear"): 5.0, ("y", "b", "linear"): 1.0, ("z", "b", "linear"): 3.0,  # y 2, z 1, x 0
        ("w", "a", "linear"): 0.99,                                                       # w lacks b
    })
    ranked, incomplete = overall(summary, mains)
    assert ranked[["checkpoint", "borda", "rank"]].values.tolist() == [["y", 2.5, 1], ["x", 2.0, 2], ["z", 1.5, 3]]
    assert ranked.set_index("checkpoint")["mean_rank"].to_dict() == {"y": 1.75, "x": 2.0, "z": 2.25}
    assert incomplete[["checkpoint", "missing"]].values.tolist() == [["w", ["b@1/linear"]]]


def classification_predictions(rng, correct_rate, truth, patients):
    """Probabilities that put the truth on top for a ``correct_rate`` share of cases."""
    right = rng.random(len(truth)) < correct_rate
    top = np.where(right, truth, 1 - truth)
    probabilities = np.full((len(truth), 2), 0.2, dtype=np.float32)
    probabilities[np.arange(len(truth)), top] = 0.8
    return {"case_ids": np.array([f"c{i}" for i in range(len(truth))]), "patient_ids": patients, "y_true": truth,
            "probabilities": probabilities}


def synthetic_pairs(n_seeds=2, n_patients=150, seed=0):
    rng = np.random.default_rng(seed)
    patients = np.repeat([f"p{i}" for i in range(n_patients)], 2)
    truth = rng.integers(0, 2, len(patients))
    return [(classification_predictions(rng, 0.9, truth, patients),
             classification_predictions(rng, 0.7, truth, patients)) for _ in range(n_seeds)]


def test_bootstrap_ci_contains_the_true_difference_and_is_deterministic():
    pairs = synthetic_pairs()  # accuracy 0.9 against 0.7: the true difference is 0.2
    result = paired_bootstrap(TASK, pairs, n_resamples=60, seed=7)
    assert result.ci_low < 0.2 < result.ci_high and result.ci_low < result.difference < result.ci_high
    assert result.n_valid == 60 and result.n_patients == 150 and result.metric == "accuracy"
    assert paired_bootstrap(TASK, pairs, n_resamples=60, seed=7) == result
    one = paired_bootstrap(TASK, pairs[:1], n_resamples=30, seed=3)
    shuffled = [(pairs[0][0], {k: v[::-1] for k, v in pairs[0][1].items()})]  # paired by case id, not row order
    assert paired_bootstrap(TASK, shuffled, n_resamples=30, seed=3) == one


def test_bootstrap_segmentation_keeps_patients_apart_when_drawn_twice():
    task = TaskSpec(name="s", version="1", domain="ct", kind="segmentation", class_names=["bg", "organ"],
                    metrics=["dice_mean", "dice_organ"], main_metric="dice_mean")
    truth = np.zeros((6, 4, 4), dtype=np.uint8)
    truth[:, :2, :2] = 1
    perfect = {"case_ids": np.arange(6).astype(str), "patient_ids": np.repeat(["p0", "p1", "p2"], 2),
               "y_true": truth, "masks": truth.copy()}
    half = {**perfect, "masks": np.where(np.arange(6)[:, None, None] % 2 == 0, truth, 0).astype(np.uint8)}
    result = paired_bootstrap(task, [(perfect, half)], n_resamples=50, seed=1)
    # per patient: one slice right, one empty -> Dice 2/3 for every patient, whichever are drawn
    assert result.difference == pytest.approx(1 / 3) and result.ci_low == pytest.approx(1 / 3)
    assert result.ci_high == pytest.approx(1 / 3)


def write_result(store, checkpoint, seed, value, predictions=None, task="t"):
    job = Job(checkpoint, "a" * 64, task, "1", "linear", "1", 1.0, seed, "demo")
    return store.write(job, {
        "job": job.as_dict(), "metrics": {"accuracy": value, "auc": 0.5},
        "main_metric": {"name": "accuracy", "value": value, "higher_is_better": True},
        "task": TASK.model_dump(mode="json"), "counts": {"train_cases": 10, "val_cases": 2},
        "checkpoint": {"name": checkpoint, "arch": "resnet18", "pretraining_domain": DOMAINS[checkpoint]},
        "predictions_file": f"{job.job_id}.predictions.npz",
    }, predictions or {"y_true": np.zeros(1)})


def test_bootstrap_from_stored_results_pairs_the_seeds(tmp_path):
    store = ResultStore(tmp_path / "results")
    for seed, (a, b) in zip((42, 1), synthetic_pairs(n_patients=40)):
        write_result(store, "mine", seed, 0.9, a)
        write_result(store, "imagenet", seed, 0.7, b)
    result = bootstrap_checkpoints(store, "mine", "imagenet", "t", "1", "linear", 1.0, n_resamples=50)
    assert result.seeds == (1, 42) and result.n_resamples == 50 and np.isfinite(result.ci_low)


def test_leaderboard_export_header_is_exact_and_the_output_stable(tmp_path, capsys, ctbench):
    store = ResultStore(tmp_path / "results")
    for seed, (mine, base) in zip((42, 1, 2), [(0.8, 0.7), (0.85, 0.8), (0.95, 0.9)]):
        write_result(store, "mine", seed, mine)
        write_result(store, "imagenet", seed, base)
    assert ctbench("leaderboard", "export", "--workdir", str(tmp_path), "--format", "csv") == 0
    text = capsys.readouterr().out
    assert text.splitlines()[0] == ",".join(EXPORT_COLUMNS) == (
        "checkpoint,task,protocol,scale,metric,n,mean,std,ci_low,ci_high,baseline,delta_pct,p_welch")
    rows = list(csv.DictReader(io.StringIO(text)))
    mine = next(r for r in rows if r["checkpoint"] == "mine" and r["metric"] == "accuracy")
    assert mine["baseline"] == "imagenet" and mine["mean"] == "0.866667" and mine["scale"] == "1"
    lonely = next(r for r in rows if r["checkpoint"] == "imagenet" and r["metric"] == "accuracy")
    assert lonely["baseline"] == lonely["delta_pct"] == lonely["p_welch"] == ""
    assert ctbench("leaderboard", "export", "--workdir", str(tmp_path)) == 0
    assert capsys.readouterr().out == text
    results, _ = load(store)
    buffer = io.StringIO()
    write_table(leaderboard_table(results), "json", buffer)
    assert '"tier": "tie"' in buffer.getvalue() and "NaN" not in buffer.getvalue()


def test_leaderboard_export_of_an_empty_workdir_is_a_one_line_error(tmp_path, capsys, ctbench):
    assert ctbench("leaderboard", "export", "--workdir", str(tmp_path / "nothing")) == 2
    assert "holds no results" in capsys.readouterr().err


def test_tidy_without_imports_is_unchanged(tmp_path):
    store = ResultStore(tmp_path)
    write_result(store, "mine", 42, 0.8)
    frame = tidy(load(store)[0])
    assert frame["imported"].tolist() == [False, False] and frame["source"].tolist() == ["", ""]
