import numpy as np
import pytest

from benchmark.core.errors import JobError
from benchmark.core.specs import CheckpointSpec, TaskSpec
from benchmark.data.slices import SliceSet
from benchmark.evaluation.protocols import PROTOCOLS, JobContext
from benchmark.evaluation.protocols.linear import _best

TASK = TaskSpec(name="t", version="1", domain="ct", kind="classification", class_names=["a", "b", "c"],
                metrics=["accuracy", "auc"], main_metric="accuracy")
CK = CheckpointSpec(name="c", arch="resnet18", pretraining_domain="none")


def context(signal: float, seed=42, n=300):
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 3, n)
    features = rng.normal(size=(n, 16))
    features[:, :3] += signal * np.eye(3)[labels]
    slices = SliceSet(np.zeros((n, 1, 1, 1), np.float16), labels, np.asarray([f"p{i}" for i in range(n)]),
                      np.asarray([f"c{i}" for i in range(n)]), "k")
    idx = np.arange(n)
    return JobContext(TASK, CK, slices, idx[:150], idx[150:200], idx[200:], seed, lambda: features)


def test_linear_probe_learns_separable_features_and_records_its_choice():
    outcome = PROTOCOLS.get("linear").run(context(signal=4.0))
    assert outcome.metrics["accuracy"] > 0.9
    assert outcome.hyperparameters["C"] in [float(c) for c in outcome.hyperparameters["sweep"]]
    assert outcome.predictions["probabilities"].shape == (100, 3)
    np.testing.assert_allclose(outcome.predictions["probabilities"].sum(1), 1, atol=1e-6)


def test_linear_probe_is_at_chance_on_noise():
    outcome = PROTOCOLS.get("linear").run(context(signal=0.0))
    assert outcome.metrics["accuracy"] < 0.5


def test_linear_probe_is_deterministic():
    a = PROTOCOLS.get("linear").run(context(signal=1.0))
    b = PROTOCOLS.get("linear").run(context(signal=1.0))
    np.testing.assert_array_equal(a.predictions["probabilities"], b.predictions["probabilities"])


def test_single_class_budget_is_a_clear_error():
    ctx = context(signal=1.0)
    ctx.slices.labels[ctx.train] = 0
    with pytest.raises(JobError, match="single class"):
        PROTOCOLS.get("linear").run(ctx)


def test_ties_prefer_stronger_regularisation_and_nan_never_wins():
    assert _best({0.01: 0.8, 1.0: 0.8, 10.0: 0.7}, True) == 0.01
    assert _best({0.01: float("nan"), 1.0: 0.5}, True) == 1.0
    assert _best({0.01: 0.2, 1.0: 0.5}, False) == 0.01
