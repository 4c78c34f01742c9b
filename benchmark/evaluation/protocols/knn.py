"""``knn``: a weighted k-nearest-neighbour vote on cached frozen features.

Cosine similarity and exp(similarity / T) vote weights with T = 0.07, the kNN monitor of
InstDisc and DINO; k is chosen on the in-budget validation split, then the vote for the
test set draws on train + val, as the linear probe refits on both. Written by hand: the
temperature-weighted vote is not scikit-learn's (it weights by 1 / distance).
"""
from __future__ import annotations

import numpy as np

from benchmark.evaluation.protocols.base import JobContext, Outcome, Protocol
from benchmark.evaluation.protocols.linear import _best

K_GRID = (1, 3, 5, 10, 20, 50, 100, 200)
TEMPERATURE = 0.07


class KNN(Protocol):
    name = "knn"
    version = "1"
    kinds = frozenset({"classification", "multilabel"})
    uses_features = True

    def run(self, ctx: JobContext) -> Outcome:
        features = _unit(ctx.features())
        targets = _one_hot(ctx, ctx.slices.labels)
        ks = [k for k in K_GRID if k <= len(ctx.train)] or [len(ctx.train)]
        sweep = {k: ctx.score(ctx.val, {"probabilities": _vote(features[ctx.val], features[ctx.train],
                                                                targets[ctx.train], k)})[ctx.task.main_metric]
                 for k in ks}
        best_k = int(_best(sweep, ctx.task.higher_is_better))
        bank = np.concatenate([ctx.train, ctx.val])
        prob = _vote(features[ctx.test], features[bank], targets[bank], best_k)
        return Outcome(ctx.score(ctx.test, {"probabilities": prob}),
                       {"k": best_k, "temperature": TEMPERATURE, "metric": "cosine", "selection":
                        "val:" + ctx.task.main_metric, "bank": "train+val", "sweep": {str(k): s for k, s in sweep.items()}},
                       {"probabilities": prob})


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def _one_hot(ctx: JobContext, labels: np.ndarray) -> np.ndarray:
    """Votes are per class; a multilabel task votes on each label's 0/1 column."""
    if ctx.task.kind == "multilabel":
        return labels.astype(np.float64)
    return np.eye(len(ctx.task.class_names))[labels]


def _vote(query: np.ndarray, bank: np.ndarray, targets: np.ndarray, k: int) -> np.ndarray:
    k = min(k, len(bank))
    similarity = query @ bank.T
    nearest = np.argsort(-similarity, axis=1, kind="stable")[:, :k]
    weights = np.exp(np.take_along_axis(similarity, nearest, axis=1) / TEMPERATURE)
    votes = np.einsum("qk,qkc->qc", weights, targets[nearest])
    return votes / weights.sum(axis=1, keepdims=True)
