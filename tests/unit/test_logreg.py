"""The torch logistic-regression path against scikit-learn's (the reference), the chunked kNN
against the dense one it replaced, and sweeps whose scores are all undefined."""
import logging

import numpy as np
import pytest
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

from benchmark.core.errors import JobError
from benchmark.core.specs import CheckpointSpec, TaskSpec
from benchmark.data.slices import SliceSet
from benchmark.evaluation.protocols import PROTOCOLS, JobContext, knn, logreg
from benchmark.evaluation.protocols.linear import solver_for

CK = CheckpointSpec(name="c", arch="resnet18", pretraining_domain="none")


def blobs(n: int, dim: int, classes: int, seed: int, signal: float = 0.25):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, classes, n)
    return (rng.normal(size=(n, dim)) + rng.normal(size=(classes, dim))[labels] * signal).astype(np.float32), labels


def context(features, labels, task, seed=42):
    n = len(labels)
    ids = np.asarray([f"c{i}" for i in range(n)])
    idx = np.arange(n)
    return JobContext(task, CK, SliceSet(np.zeros((n, 1, 1, 1), np.float16), labels, ids, ids, "k"),
                      idx[:n // 2], idx[n // 2:n * 7 // 10], idx[n * 7 // 10:], seed, lambda: features)


def classification(classes: int, main="accuracy"):
    return TaskSpec(name="t", version="1", domain="ct", kind="classification", class_names=[str(c) for c in range(classes)],
                    metrics=["accuracy", "auc"], main_metric=main)


MULTILABEL = TaskSpec(name="m", version="1", domain="ct", kind="multilabel", class_names=["x", "y", "z"],
                      metrics=["auc"], main_metric="auc")


def both_solvers(ctx, monkeypatch):
    outcomes = {}
    for solver in ("sklearn", "torch"):
        monkeypatch.setenv("CTBENCH_LINEAR_SOLVER", solver)
        outcomes[solver] = PROTOCOLS.get("linear").run(ctx)
    return outcomes["sklearn"], outcomes["torch"]


@pytest.mark.parametrize("classes", [2, 6])
def test_one_c_fit_matches_sklearns_solution(classes):
    """The same objective: at one C the torch heads give scikit-learn's probabilities."""
    x, y = blobs(300, 32, classes, seed=classes)
    scaled = StandardScaler().fit_transform(x.astype(np.float64))
    reference = LogisticRegression(C=0.1, tol=1e-8, max_iter=5000).fit(scaled, y).predict_proba(scaled)
    rows = logreg.standardized_rows(x, np.arange(len(x)), torch.device("cpu"))
    torch.testing.assert_close(rows.x, torch.from_numpy(scaled).double(), rtol=1e-4, atol=1e-4)
    heads = logreg.fit(rows.x, y, classes, (0.1,), tol=1e-8, max_iter=5000)
    np.testing.assert_allclose(heads.proba(rows.x)[0].numpy(), reference, atol=1e-5)


def test_torch_path_picks_sklearns_c_and_scores_alike(monkeypatch):
    """Blobs of a few hundred x 64 with 2, 3 and 6 classes, and a multilabel task: the same C in
    >= 90 % of heads, the test metric within 0.005."""
    same, gaps = [], []
    for classes in (2, 3, 6):
        for seed in range(3):
            x, y = blobs(400, 64, classes, seed)
            ref, new = both_solvers(context(x, y, classification(classes)), monkeypatch)
            same.append(ref.hyperparameters["C"] == new.hyperparameters["C"])
            gaps.append(abs(ref.metrics["accuracy"] - new.metrics["accuracy"]))
            assert (ref.hyperparameters["solver"], new.hyperparameters["solver"]) == ("sklearn-lbfgs", "torch-lbfgs")
    x, y = blobs(400, 64, 3, seed=9)
    multilabel = np.stack([y == 0, y == 1, (y == 2) | (x[:, 0] > 0)], axis=1).astype(np.int64)
    ref, new = both_solvers(context(x, multilabel, MULTILABEL), monkeypatch)
    same += [ref.hyperparameters["per_label"][k]["C"] == new.hyperparameters["per_label"][k]["C"] for k in "xyz"]
    gaps.append(abs(ref.metrics["auc"] - new.metrics["auc"]))
    assert np.mean(same) >= 0.9 and max(gaps) <= 0.005, (same, gaps)


def test_torch_path_records_solver_iterations_and_device(monkeypatch):
    x, y = blobs(200, 16, 3, seed=0)
    monkeypatch.setenv("CTBENCH_LINEAR_SOLVER", "torch")
    hp = PROTOCOLS.get("linear").run(context(x, y, classification(3))).hyperparameters
    assert hp["solver"] == "torch-lbfgs" and hp["device"] == "cpu"
    assert hp["iterations"]["sweep"] > 0 and hp["iterations"]["refit"] > 0


def test_solver_choice_follows_size_and_override(monkeypatch):
    monkeypatch.delenv("CTBENCH_LINEAR_SOLVER", raising=False)
    assert solver_for(800, 512, "cpu") == "sklearn"
    assert solver_for(1_280_000, 2048, "cuda") == "torch"
    monkeypatch.setenv("CTBENCH_LINEAR_SOLVER", "torch")
    assert solver_for(800, 512, "cpu") == "torch"
    monkeypatch.setenv("CTBENCH_LINEAR_SOLVER", "lbfgs")
    with pytest.raises(JobError, match="CTBENCH_LINEAR_SOLVER"):
        solver_for(800, 512, "cpu")


def dense_vote(query, bank, targets, k):
    """The implementation the chunked one replaced: a dense query x bank matrix, stable argsort."""
    unit = lambda x: x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)  # noqa: E731
    similarity = unit(query) @ unit(bank).T
    nearest = np.argsort(-similarity, axis=1, kind="stable")[:, :k]
    weights = np.exp(np.take_along_axis(similarity, nearest, axis=1) / knn.TEMPERATURE)
    return np.einsum("qk,qkc->qc", weights, targets[nearest]) / weights.sum(axis=1, keepdims=True)


@pytest.mark.parametrize("k", [1, 5, 20])
def test_chunked_knn_equals_the_dense_vote_ties_included(monkeypatch, k):
    monkeypatch.setattr(knn, "CHUNK_CELLS", 7 * 60)  # 7 query rows a chunk
    x, y = blobs(100, 8, 3, seed=1)
    x[60:70] = x[0]  # exact ties: duplicates of one bank row
    x[75:80] = np.round(x[75:80], 1)
    bank_rows, query_rows = np.arange(60), np.arange(60, 100)
    targets = np.eye(3)[y]
    similarity, nearest = knn._neighbours(x, query_rows, knn._unit(x[bank_rows]), k)
    # the same neighbours; votes agree to float precision: exp(s / 0.07) turns a last-bit difference of a
    # similarity (BLAS sums in another order, by thread count) into ~1e-6 of a small vote
    np.testing.assert_allclose(knn._vote(similarity, targets[bank_rows][nearest]),
                               dense_vote(x[query_rows], x[bank_rows], targets[bank_rows], k), rtol=1e-5, atol=1e-12)


def test_knn_protocol_matches_the_dense_implementation(monkeypatch):
    monkeypatch.setattr(knn, "CHUNK_CELLS", 1000)
    x, y = blobs(300, 16, 3, seed=2)
    ctx = context(x, y, classification(3))
    outcome = PROTOCOLS.get("knn").run(ctx)
    bank = np.concatenate([ctx.train, ctx.val])
    expected = dense_vote(x[ctx.test], x[bank], np.eye(3)[y[bank]], outcome.hyperparameters["k"])
    # float32 similarities through exp(s / 0.07): agreement to float precision, not to the last bit
    np.testing.assert_allclose(outcome.predictions["probabilities"], expected, rtol=1e-5, atol=1e-12)
    assert outcome.hyperparameters["sweep_undefined"] is False


def without_class_in_val(task):
    x, y = blobs(300, 16, 3, seed=3)
    ctx = context(x, y, task)
    ctx.slices.labels[ctx.val] = 0  # a validation split holding one class: its AUC is undefined
    return ctx


@pytest.mark.parametrize("protocol", ["linear", "knn"])
def test_an_all_undefined_sweep_is_logged_and_recorded(protocol, caplog, monkeypatch):
    monkeypatch.setenv("CTBENCH_LINEAR_SOLVER", "sklearn")
    with caplog.at_level(logging.WARNING):
        outcome = PROTOCOLS.get(protocol).run(without_class_in_val(classification(3, main="auc")))
    assert outcome.hyperparameters["sweep_undefined"] is True
    assert outcome.hyperparameters["C" if protocol == "linear" else "k"] == 1
    assert any("undefined" in r.getMessage() and "task t" in r.getMessage() for r in caplog.records)
    defined = PROTOCOLS.get(protocol).run(context(*blobs(300, 16, 3, seed=3), classification(3, main="auc")))
    assert defined.hyperparameters["sweep_undefined"] is False


def test_multilabel_records_an_undefined_sweep_per_label(caplog):
    x, y = blobs(300, 16, 3, seed=4)
    labels = np.stack([y == 0, y == 1, y == 2], axis=1).astype(np.int64)
    ctx = context(x, labels, MULTILABEL)
    ctx.slices.labels[ctx.val, 2] = 0  # label z: no positive in val
    with caplog.at_level(logging.WARNING):
        hp = PROTOCOLS.get("linear").run(ctx).hyperparameters
    assert [hp["per_label"][k]["sweep_undefined"] for k in "xyz"] == [False, False, True]
    assert hp["sweep_undefined"] is True and "of z" in caplog.text
