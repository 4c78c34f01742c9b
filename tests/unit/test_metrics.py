import numpy as np
import pytest

from benchmark.catalog.registries import task_registry
from benchmark.evaluation.metrics import compute, known_metric, segmentation_scores


def test_dice_per_class_per_volume_globally_and_per_slice():
    truth = np.array([[[0, 1, 1, 2]], [[0, 1, 1, 1]], [[0, 0, 0, 0]]])  # 3 slices of 1x4 pixels
    pred = np.array([[[0, 1, 0, 2]], [[0, 1, 1, 1]], [[2, 0, 0, 0]]])
    patients = np.array(["a", "a", "b"])
    scores = segmentation_scores(truth, pred, patients, ["background", "liver", "lesion"])
    assert scores["dice_global_liver"] == pytest.approx(2 * 4 / (5 + 4))
    assert scores["dice_liver"] == pytest.approx(2 * 4 / (5 + 4))  # only volume a has liver
    assert scores["dice_slice_liver"] == pytest.approx((2 / 3 + 1) / 2)  # slice 3 has none: left out
    assert scores["dice_lesion"] == pytest.approx((1.0 + 0.0) / 2)  # volume b: a false positive scores 0
    assert scores["dice_global_lesion"] == pytest.approx(2 * 1 / (1 + 2))
    assert scores["dice_mean"] == pytest.approx((scores["dice_liver"] + scores["dice_lesion"]) / 2)


def test_a_class_absent_everywhere_has_no_dice():
    scores = segmentation_scores(np.zeros((2, 2, 2), int), np.zeros((2, 2, 2), int), np.array(["a", "b"]),
                                 ["background", "lesion"])
    assert np.isnan(scores["dice_lesion"]) and np.isnan(scores["dice_mean"]) and np.isnan(scores["dice_slice_lesion"])


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
        assert all(known_metric(m, spec.class_names, spec.regions) for m in spec.metrics), entry.name


def test_multilabel_auc_is_the_mean_of_per_label_aucs():
    y = np.array([[1, 0], [0, 1], [1, 1], [0, 0]])
    prob = np.array([[0.9, 0.2], [0.1, 0.3], [0.8, 0.6], [0.2, 0.4]])  # label 0 perfect, label 1 AUC 0.75
    assert compute(["auc"], y, prob)["auc"] == pytest.approx((1.0 + 0.75) / 2)


def test_regions_are_unions_of_classes_and_dice_mean_averages_them():
    truth = np.array([[[0, 1, 2, 3]]])  # BraTS-style: 1 necrosis, 2 oedema, 3 enhancing
    pred = np.array([[[0, 1, 1, 3]]])
    scores = segmentation_scores(truth, pred, np.array(["a"]), ["bg", "ncr", "ed", "et"],
                                 {"WT": [1, 2, 3], "TC": [1, 3], "ET": [3]})
    assert scores["dice_WT"] == 1.0 and scores["dice_ET"] == 1.0
    assert scores["dice_TC"] == pytest.approx(2 * 2 / (2 + 3))
    assert scores["dice_mean"] == pytest.approx((1 + 1 + 0.8) / 3)


def test_multiclass_auc_averages_the_classes_present_and_matches_sklearn_when_all_are():
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(0)
    y = rng.integers(0, 4, 200)
    prob = rng.dirichlet(np.ones(4), 200) + np.eye(4)[y] * 0.3
    prob /= prob.sum(1, keepdims=True)
    assert compute(["auc"], y, prob)["auc"] == pytest.approx(roc_auc_score(y, prob, multi_class="ovr"))
    rare_missing = y != 3  # a small validation split without the rare class
    expected = np.mean([roc_auc_score(y[rare_missing] == c, prob[rare_missing, c]) for c in range(3)])
    assert compute(["auc"], y[rare_missing], prob[rare_missing])["auc"] == pytest.approx(expected)
    from benchmark.evaluation.metrics import absent_classes

    assert absent_classes(y[rare_missing], ["a", "b", "c", "pelvis"]) == ["pelvis"]
    assert absent_classes(np.array([[1, 0], [1, 1]]), ["x", "y"]) == ["x"]


def test_f1_macro_leaves_out_a_class_absent_from_truth_and_prediction_as_dice_does():
    y = np.array([0, 1, 1, 0])
    prob = np.eye(3)[[0, 1, 1, 0]]  # perfect on classes 0 and 1; class 2 neither present nor predicted
    assert compute(["f1_macro"], y, prob)["f1_macro"] == 1.0
    predicted_only = np.eye(3)[[0, 1, 2, 0]]  # class 2 predicted once but absent: it scores 0
    assert compute(["f1_macro"], y, predicted_only)["f1_macro"] == pytest.approx((1 + 2 / 3 + 0) / 3)
