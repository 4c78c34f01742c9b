"""paired_bootstrap_cell: one leaderboard cell's paired patient bootstrap, as the static site computes
it for every cell (leaderboard/bootstrap_cache.py): 1000 resamples x 3 seeds on 300 test rows of 60
patients, for the main metrics with an exact vectorised path (accuracy, AUC, per-volume Dice).

Rescoring every resample with ``metrics.score`` (the general path, still used for the other
metrics) took about 2.6 s (accuracy), 37 s (4-class AUC) and 196 s (dice_mean, 32x32 masks) per
cell on the 2-core development machine; target: at most 1 s per cell.
"""
import time

import numpy as np
import pytest

from benchmark.core.specs import TaskSpec
from leaderboard.bootstrap import paired_bootstrap

GROUP = "paired-bootstrap-cell"
N_PATIENTS, ROWS_PER_PATIENT, N_SEEDS, N_RESAMPLES = 60, 5, 3, 1000
TARGET_S = 1.0

CLASSES = TaskSpec(name="t", version="1", domain="ct", kind="classification", class_names=list("abcd"),
                   metrics=["accuracy", "auc"], main_metric="accuracy")
ORGANS = TaskSpec(name="s", version="1", domain="ct", kind="segmentation", class_names=["bg", "liver", "tumour"],
                  metrics=["dice_mean"], main_metric="dice_mean")


def cell(task: TaskSpec) -> list[tuple[dict, dict]]:
    """Two checkpoints' saved predictions for N_SEEDS seeds of one cell."""
    rng = np.random.default_rng(0)
    patients = np.repeat([f"p{i}" for i in range(N_PATIENTS)], ROWS_PER_PATIENT)
    cases = np.array([f"c{i}" for i in range(len(patients))])
    if task.kind == "segmentation":
        truth = rng.integers(0, 3, (len(patients), 32, 32)).astype(np.uint8)

        def predicted(skill):
            return {"masks": np.where(rng.random(truth.shape) < skill, truth, 0).astype(np.uint8)}
    else:
        truth = rng.integers(0, 4, len(patients))

        def predicted(skill):
            prob = rng.random((len(truth), 4))
            prob[np.arange(len(truth)), truth] += skill
            return {"probabilities": (prob / prob.sum(axis=1, keepdims=True)).astype(np.float32)}
    return [tuple({"case_ids": cases, "patient_ids": patients, "y_true": truth, **predicted(skill)}
                  for skill in (0.9, 0.6)) for _ in range(N_SEEDS)]


@pytest.mark.benchmark(group=GROUP)
@pytest.mark.parametrize("metric", ["accuracy", "auc", "dice_mean"])
def test_paired_bootstrap_cell(benchmark, perf_report, pinned_threads, metric):
    task = ORGANS if metric.startswith("dice") else CLASSES
    pairs = cell(task)
    result = benchmark(paired_bootstrap, task, pairs, metric, n_resamples=N_RESAMPLES, seed=0)
    assert result.n_valid == N_RESAMPLES and result.ci_low < result.difference < result.ci_high
    started = time.perf_counter()
    paired_bootstrap(task, pairs, metric, n_resamples=N_RESAMPLES, seed=0)
    seconds = time.perf_counter() - started
    perf_report.record(GROUP, metric, benchmark, seconds=seconds, rows=len(pairs[0][0]["y_true"]),
                       patients=N_PATIENTS, seeds=N_SEEDS, resamples=N_RESAMPLES, threads=pinned_threads)
    assert seconds <= TARGET_S, f"{metric}: {seconds:.2f} s for one cell's bootstrap"
