import numpy as np
import pytest

from benchmark.evaluation.metrics import STUDY_DICE_SEED, segmentation_scores, study_dice

LITS = ["background", "liver", "tumour"]
BRATS = ["background", "necrotic", "edema", "enhancing"]
BRATS_REGIONS = {"WT": [1, 2, 3], "TC": [1, 3], "ET": [3]}


def _in_study_order(slices: np.ndarray, seed: int = STUDY_DICE_SEED) -> np.ndarray:
    """Place designed slices so that the study's seeded permutation reads them back in this order."""
    placed = np.empty_like(slices)
    placed[np.random.default_rng(seed).permutation(len(slices))] = slices
    return placed


def test_two_batches_pool_pixels_skip_empty_batches_and_weight_by_batch_size():
    truth = np.array([[[0, 1, 1, 2]], [[0, 1, 1, 1]], [[0, 0, 0, 0]]])  # batch 1: slices 0-1; batch 2: slice 2
    pred = np.array([[[0, 1, 0, 2]], [[0, 1, 1, 1]], [[2, 0, 0, 0]]])
    scores = study_dice(_in_study_order(truth), _in_study_order(pred), LITS, batch_size=2)
    assert list(scores) == ["dice_study_background", "dice_study_liver", "dice_study_tumour"]
    assert scores["dice_study_liver"] == pytest.approx(2 * 4 / (5 + 4))  # batch 2 has no liver: skipped
    assert scores["dice_study_tumour"] == pytest.approx((1.0 * 2 + 0.0 * 1) / 3)  # batch 2: a false positive
    assert scores["dice_study_background"] == pytest.approx((2 * 2 / (2 + 3) * 2 + 2 * 3 / (4 + 3) * 1) / 3)


def test_same_inputs_give_the_same_numbers_and_the_permutation_matters():
    truth = np.array([[[0, 1, 1, 2]], [[0, 1, 1, 1]], [[0, 0, 0, 0]]])
    pred = np.array([[[0, 1, 0, 2]], [[0, 1, 1, 1]], [[2, 0, 0, 0]]])
    first, again = study_dice(truth, pred, LITS, batch_size=2), study_dice(truth.copy(), pred.copy(), LITS, batch_size=2)
    assert first == again
    by_seed = {study_dice(truth, pred, LITS, batch_size=2, seed=s)["dice_study_tumour"] for s in range(10)}
    assert len(by_seed) > 1  # which slices share a batch changes the study's Dice


def test_brats_scores_background_and_the_regions_in_the_study_order():
    truth = np.array([[[0, 1, 2, 3]], [[0, 0, 2, 2]]])
    pred = np.array([[[0, 1, 1, 3]], [[0, 0, 2, 0]]])
    scores = study_dice(truth, pred, BRATS, BRATS_REGIONS, batch_size=4)  # one batch: order irrelevant
    assert list(scores) == ["dice_study_background", "dice_study_ET", "dice_study_WT", "dice_study_TC"]
    assert scores["dice_study_ET"] == pytest.approx(1.0)
    assert scores["dice_study_WT"] == pytest.approx(2 * 4 / (5 + 4))
    assert scores["dice_study_TC"] == pytest.approx(2 * 2 / (2 + 3))
    assert scores["dice_study_background"] == pytest.approx(2 * 3 / (3 + 4))


def test_perfect_prediction_scores_one_and_an_absent_class_scores_the_studys_zero():
    truth = np.random.default_rng(1).integers(0, 2, size=(300, 4, 4))  # three batches of 128, 128 and 44
    scores = study_dice(truth, truth.copy(), LITS)
    assert scores["dice_study_background"] == pytest.approx(1.0) and scores["dice_study_liver"] == pytest.approx(1.0)
    assert scores["dice_study_tumour"] == 0.0  # never present: the study's empty weighted sum, not NaN


def test_segmentation_scores_reports_study_dice_beside_the_ranking_dice():
    truth = np.array([[[0, 1, 2, 3]], [[0, 0, 2, 2]]])
    scores = segmentation_scores(truth, truth.copy(), np.array(["a", "b"]), BRATS, BRATS_REGIONS)
    study = [k for k in scores if k.startswith("dice_study_")]
    assert study == ["dice_study_background", "dice_study_ET", "dice_study_WT", "dice_study_TC"]
    assert scores["dice_WT"] == 1.0 and all(isinstance(scores[k], float) for k in study)
