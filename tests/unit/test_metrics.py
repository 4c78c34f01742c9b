import numpy as np
import pytest

from benchmark.metrics import compute, dice_scores, known_metric
from benchmark.plugins import task_registry


def test_dice_per_class_and_mean():
    truth = np.array([[0, 1, 1, 2]])
    pred = np.array([[0, 1, 0, 2]])
    scores = dice_scores(truth, pred, ["background", "liver", "lesion"])
    assert scores["dice_liver"] == pytest.approx(2 * 1 / (2 + 1))
    assert scores["dice_lesion"] == 1.0
    assert scores["dice_mean"] == pytest.approx((2 / 3 + 1) / 2)


def test_a_class_absent_everywhere_has_no_dice():
    scores = dice_scores(np.zeros((2, 2)), np.zeros((2, 2)), ["background", "lesion"])
    assert np.isnan(scores["dice_lesion"]) and np.isnan(scores["dice_mean"])


def test_classification_metrics_from_probabilities():
    y = np.array([0, 1, 2, 2])
    prob = np.eye(3)[[0, 1, 2, 1]] * 0.9 + 0.1 / 3
    scores = compute(["accuracy", "balanced_accuracy", "auc"], y, prob)
    assert scores["accuracy"] == 0.75
    assert scores["balanced_accuracy"] == pytest.approx((1 + 1 + 0.5) / 3)
    assert 0.5 < scores["auc"] <= 1


def test_auc_of_a_single_class_test_set_is_undefined_not_perfect():
    assert np.isnan(compute(["auc"], np.array([1, 1]), np.array([[0.2, 0.8], [0.6, 0.4]]))["auc"])


def test_every_registered_task_names_metrics_ctbench_can_compute():
    for entry in task_registry():
        spec = entry.obj.spec
        assert all(known_metric(m, spec.class_names) for m in spec.metrics), entry.name
