"""The paired bootstrap's vectorised path (accuracy, AUC, per-volume Dice) gives the numbers of
rescoring every resample with ``metrics.score``: same draws, same dropped resamples, same interval."""
import numpy as np
import pytest

from benchmark.core.specs import TaskSpec
from leaderboard import bootstrap

CLASSES = TaskSpec(name="t", version="1", domain="ct", kind="classification", class_names=list("abcd"),
                   metrics=["accuracy", "auc", "balanced_accuracy"], main_metric="accuracy")
BINARY = TaskSpec(name="b", version="1", domain="ct", kind="classification", class_names=["no", "yes"],
                  metrics=["accuracy", "auc"], main_metric="auc")
LABELS = TaskSpec(name="m", version="1", domain="ct", kind="multilabel", class_names=["x", "y", "z"],
                  metrics=["auc"], main_metric="auc")
ORGANS = TaskSpec(name="s", version="1", domain="ct", kind="segmentation", class_names=["bg", "liver", "tumour"],
                  metrics=["dice_mean", "dice_liver", "dice_tumour"], main_metric="dice_mean")
BRATS = TaskSpec(name="r", version="1", domain="ct", kind="segmentation", class_names=["bg", "ncr", "ed", "et"],
                 metrics=["dice_mean"], main_metric="dice_mean",
                 regions={"WT": [1, 2, 3], "TC": [1, 3], "ET": [3]})


def patient_ids(rng, n_patients):
    """1 to 6 rows a patient, the rows of patients interleaved (as a shuffled test set)."""
    ids = np.repeat([f"p{i:02d}" for i in range(n_patients)], rng.integers(1, 7, n_patients))
    return ids[rng.permutation(len(ids))]


def dicts(ids, truth, key, values_a, values_b):
    cases = np.array([f"c{i}" for i in range(len(ids))])
    return tuple({"case_ids": cases, "patient_ids": ids, "y_true": truth, key: v} for v in (values_a, values_b))


def probabilities(rng, truth, n_classes, decimals=None):
    prob = rng.random((len(truth), n_classes))
    prob[np.arange(len(truth)), truth] += rng.random() * 2
    prob /= prob.sum(axis=1, keepdims=True)
    return (np.round(prob, decimals) if decimals is not None else prob).astype(np.float32)


def classification_pairs(seed, n_classes, n_patients, n_seeds=3, decimals=None, weights=None):
    rng = np.random.default_rng(seed)
    ids = patient_ids(rng, n_patients)
    truth = rng.choice(n_classes, size=len(ids), p=weights)
    return [dicts(ids, truth, "probabilities", probabilities(rng, truth, n_classes, decimals),
                  probabilities(rng, truth, n_classes, decimals)) for _ in range(n_seeds)]


def multilabel_pairs(seed, n_patients=12, n_seeds=2):
    rng = np.random.default_rng(seed)
    ids = patient_ids(rng, n_patients)
    truth = (rng.random((len(ids), 3)) < [0.5, 0.3, 0.08]).astype(np.int64)

    def prob():
        return np.round(np.clip(truth * rng.random() + rng.random(truth.shape), 0, 1), 1).astype(np.float32)

    return [dicts(ids, truth, "probabilities", prob(), prob()) for _ in range(n_seeds)]


def segmentation_pairs(seed, n_classes, n_patients=10, n_seeds=2):
    """Masks where some patients lack some classes in truth, prediction or both."""
    rng = np.random.default_rng(seed)
    ids = patient_ids(rng, n_patients)
    patients = np.unique(ids)
    present = rng.random((len(patients), n_classes)) < 0.6  # which classes each patient's truth holds
    rows = np.arange(len(ids))[:, None, None]

    def labels(allowed):  # random labels, those a row's patient is not allowed set to background
        drawn = rng.integers(0, n_classes, (len(ids), 6, 6))
        return np.where(allowed[np.searchsorted(patients, ids)][rows, drawn], drawn, 0)

    truth = labels(present)

    def predicted():  # noise within the classes the patient holds, plus a few false ones
        noisy = labels(present | (rng.random(present.shape) < 0.15))
        kept = np.where(rng.random(truth.shape) < rng.uniform(0.5, 0.9), truth, noisy)
        return np.where(rng.random(truth.shape) < 0.3, 0, kept).astype(np.uint8)

    return [dicts(ids, truth.astype(np.uint8), "masks", predicted(), predicted()) for _ in range(n_seeds)]


def assert_same(task, pairs, metric, n_resamples=40, seeds=(0, 1, 2)):
    for seed in seeds:
        fast = bootstrap.paired_bootstrap(task, pairs, metric, n_resamples=n_resamples, seed=seed)
        general = bootstrap._paired_bootstrap(task, pairs, metric, n_resamples, seed, 0.95, fast=False)
        assert fast.n_valid == general.n_valid and fast.n_patients == general.n_patients
        assert fast.difference == pytest.approx(general.difference, abs=1e-9, nan_ok=True)
        if general.n_valid:
            assert fast.ci_low == pytest.approx(general.ci_low, abs=1e-9)
            assert fast.ci_high == pytest.approx(general.ci_high, abs=1e-9)
        else:
            assert np.isnan(fast.ci_low) and np.isnan(fast.ci_high)
    return general


def takes_the_fast_path(task, pairs, metric):
    a, b = pairs[0]
    n_patients = len(np.unique(a["patient_ids"]))
    return all(bootstrap._fast_metric(task, metric, p, n_patients) is not None for p in (a, b))


@pytest.mark.parametrize("data_seed", [0, 1])
def test_accuracy_multiclass_equals_rescoring(data_seed):
    pairs = classification_pairs(data_seed, 4, n_patients=15)
    assert takes_the_fast_path(CLASSES, pairs, "accuracy")
    assert assert_same(CLASSES, pairs, "accuracy").n_valid == 40


@pytest.mark.parametrize("data_seed", [0, 1, 2])
def test_binary_auc_with_ties_equals_rescoring_and_drops_the_same_resamples(data_seed):
    # few patients, a rare positive class and scores on a 0.1 grid: many ties, some one-class resamples
    pairs = classification_pairs(data_seed, 2, n_patients=6, decimals=1, weights=[0.85, 0.15])
    assert takes_the_fast_path(BINARY, pairs, "auc")
    general = assert_same(BINARY, pairs, "auc", n_resamples=60)
    assert 0 < general.n_valid <= 60


def test_binary_auc_drops_one_class_resamples_like_rescoring():
    pairs = classification_pairs(3, 2, n_patients=4, decimals=1, weights=[0.9, 0.1])
    general = assert_same(BINARY, pairs, "auc", n_resamples=60)
    assert general.n_valid < 60  # some resamples hold one class only: dropped on both paths


def resamples_holding(pairs, holds, n_resamples=40, seed=0):
    """How many of ``seed``'s resamples draw a patient with a row where ``holds(y_true)``."""
    a = pairs[0][0]
    patients = np.unique(a["patient_ids"])
    has = np.array([holds(a["y_true"][a["patient_ids"] == p]).any() for p in patients])
    draws = np.random.default_rng(seed).integers(0, len(patients), size=(n_resamples, len(patients)))
    return int(sum(has[draw].any() for draw in draws))


@pytest.mark.parametrize("data_seed", [0, 1, 2])
def test_multiclass_auc_with_a_class_missing_from_some_resamples_equals_rescoring(data_seed):
    # class 3 is rare: some resamples lack it and average the other three columns only
    pairs = classification_pairs(data_seed, 4, n_patients=10, decimals=2, weights=[0.44, 0.3, 0.2, 0.06])
    assert 0 < resamples_holding(pairs, lambda y: y == 3) < 40
    assert takes_the_fast_path(CLASSES, pairs, "auc")
    assert_same(CLASSES, pairs, "auc")


@pytest.mark.parametrize("data_seed", [1, 4])
def test_multilabel_auc_equals_rescoring(data_seed):
    pairs = multilabel_pairs(data_seed)
    assert 0 < resamples_holding(pairs, lambda y: y[:, 2] == 1) < 40  # label z: left out of some resamples
    assert takes_the_fast_path(LABELS, pairs, "auc")
    assert_same(LABELS, pairs, "auc")


@pytest.mark.parametrize("metric", ["dice_mean", "dice_liver", "dice_tumour"])
@pytest.mark.parametrize("data_seed", [0, 1])
def test_per_volume_dice_equals_rescoring_with_absent_classes(metric, data_seed):
    pairs = segmentation_pairs(data_seed, 3)
    a = pairs[0][0]
    patients = np.unique(a["patient_ids"])
    holds = [((a["y_true"][a["patient_ids"] == p] == 2) | (a["masks"][a["patient_ids"] == p] == 2)).any()
             for p in patients]
    assert not all(holds)  # some patients have no tumour in truth or prediction: a NaN volume
    assert takes_the_fast_path(ORGANS, pairs, metric)
    assert_same(ORGANS, pairs, metric, n_resamples=25, seeds=(0, 5))


@pytest.mark.parametrize("metric", ["dice_mean", "dice_ET", "dice_ncr"])
def test_per_volume_dice_of_regions_equals_rescoring(metric):
    pairs = segmentation_pairs(2, 4, n_seeds=1)
    assert takes_the_fast_path(BRATS, pairs, metric)
    assert_same(BRATS, pairs, metric, n_resamples=20, seeds=(0, 1))


def test_a_target_nobody_holds_is_nan_in_every_resample_on_both_paths():
    pairs = segmentation_pairs(4, 3, n_seeds=1)
    a, b = pairs[0]
    no_tumour = [({**p, "y_true": np.minimum(p["y_true"], 1), "masks": np.minimum(p["masks"], 1)}) for p in (a, b)]
    assert assert_same(ORGANS, [tuple(no_tumour)], "dice_tumour", n_resamples=10, seeds=(0,)).n_valid == 0
    assert assert_same(ORGANS, [tuple(no_tumour)], "dice_mean", n_resamples=10, seeds=(0,)).n_valid == 10


def test_the_other_metrics_keep_rescoring():
    pairs = classification_pairs(0, 4, n_patients=8, n_seeds=1)
    assert not takes_the_fast_path(CLASSES, pairs, "balanced_accuracy")
    seg = segmentation_pairs(0, 3, n_seeds=1)
    for metric in ("dice_global_liver", "dice_slice_tumour", "dice_study_liver"):
        assert not takes_the_fast_path(ORGANS, seg, metric)
    assert_same(CLASSES, pairs, "balanced_accuracy", n_resamples=10, seeds=(0,))
    with pytest.raises(ValueError, match="no metric"):
        bootstrap.paired_bootstrap(ORGANS, seg, "dice_nothing", n_resamples=5)


def test_blocks_of_resamples_give_the_same_numbers(monkeypatch):
    pairs = classification_pairs(5, 4, n_patients=12, decimals=2)
    whole = {m: bootstrap.paired_bootstrap(CLASSES, pairs, m, n_resamples=50, seed=3) for m in ("accuracy", "auc")}
    monkeypatch.setattr(bootstrap, "CHUNK_CELLS", 7)  # a resample or so at a time
    assert {m: bootstrap.paired_bootstrap(CLASSES, pairs, m, n_resamples=50, seed=3) for m in whole} == whole


def test_multiplicities_count_each_patient_in_each_draw():
    draws = np.array([[0, 0, 2], [1, 2, 1], [2, 2, 2]])
    assert bootstrap._multiplicities(draws, 3).tolist() == [[2, 0, 1], [0, 2, 1], [0, 0, 3]]
