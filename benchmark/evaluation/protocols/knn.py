"""``knn``: a weighted k-nearest-neighbour vote on cached frozen features.

Cosine similarity and exp(similarity / T) vote weights with T = 0.07, the kNN monitor of
InstDisc and DINO; k is chosen on the in-budget validation split, then the vote for the
test set draws on train + val, as the linear probe refits on both. Written by hand: the
temperature-weighted vote is not scikit-learn's (it weights by 1 / distance).

Queries go in chunks, so memory is bounded by chunk x bank similarities (a dense val x train
matrix of a 1.28M-slice task would not fit), and the neighbours of the largest k serve every
k of the sweep (the nearest k are a prefix of the nearest max-k).
"""
from __future__ import annotations

import numpy as np
import torch

from benchmark.evaluation.protocols.base import JobContext, Outcome, Protocol
from benchmark.evaluation.protocols.linear import choose

K_GRID = (1, 3, 5, 10, 20, 50, 100, 200)
TEMPERATURE = 0.07
CHUNK_CELLS = 2**24  # query rows x bank rows of similarities held at once (64 MiB in float32)


class KNN(Protocol):
    name = "knn"
    version = "1"
    kinds = frozenset({"classification", "multilabel"})
    uses_features = True

    def run(self, ctx: JobContext) -> Outcome:
        features = ctx.features()
        targets = _one_hot(ctx, ctx.slices.labels)
        ks = [k for k in K_GRID if k <= len(ctx.train)] or [len(ctx.train)]
        train_bank = _unit(features[ctx.train])
        similarity, nearest = _neighbours(features, ctx.val, train_bank, max(ks))
        neighbour_targets = targets[ctx.train][nearest]
        sweep = {k: ctx.score(ctx.val, {"probabilities": _vote(similarity[:, :k], neighbour_targets[:, :k])}
                              )[ctx.task.main_metric] for k in ks}
        best, undefined = choose(sweep, ctx.task.higher_is_better, ctx.task.name, "knn k sweep", default=1)
        best_k = int(best)
        bank = np.concatenate([ctx.train, ctx.val])
        del train_bank
        similarity, nearest = _neighbours(features, ctx.test, _unit(features[bank]), best_k)
        prob = _vote(similarity, targets[bank][nearest])
        return Outcome(ctx.score(ctx.test, {"probabilities": prob}),
                       {"k": best_k, "temperature": TEMPERATURE, "metric": "cosine", "selection":
                        "val:" + ctx.task.main_metric, "bank": "train+val", "sweep": {str(k): s for k, s in sweep.items()},
                        "sweep_undefined": undefined},
                       {"probabilities": prob})


def _unit(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length in place, block by block: ``x`` is always rows gathered by a
    fancy index, a copy already."""
    for start in range(0, len(x), 65536):
        block = x[start:start + 65536]
        block /= np.maximum(np.linalg.norm(block, axis=1, keepdims=True), 1e-12)
    return x


def _one_hot(ctx: JobContext, labels: np.ndarray) -> np.ndarray:
    """Votes are per class; a multilabel task votes on each label's 0/1 column."""
    if ctx.task.kind == "multilabel":
        return labels.astype(np.float64)
    return np.eye(len(ctx.task.class_names))[labels]


def _neighbours(features: np.ndarray, rows: np.ndarray, bank: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Similarities and bank indices of each query row's ``k`` nearest, most similar first."""
    k = min(k, len(bank))
    chunk = max(1, CHUNK_CELLS // max(len(bank), 1))
    parts = [_nearest(_unit(features[rows[s:s + chunk]]) @ bank.T, k) for s in range(0, len(rows), chunk)]
    if not parts:
        return np.zeros((0, k), bank.dtype), np.zeros((0, k), np.int64)
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


def _nearest(similarity: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The top ``k`` per row by torch.topk, in the order of a stable argsort of -similarity: ties
    go to the lower bank index, also at the k-th place (topk alone picks among ties arbitrarily)."""
    values, picked = torch.topk(torch.from_numpy(similarity), k, dim=1)
    picked = picked.numpy()
    kth = values[:, -1:].numpy()
    tied_beyond = (similarity == kth).sum(1) > (values.numpy() == kth).sum(1)
    tied_beyond |= ~np.isfinite(kth[:, 0])  # NaN rows: the argsort's own order
    for row in np.flatnonzero(tied_beyond):
        picked[row] = np.argsort(-similarity[row], kind="stable")[:k]
    picked = np.sort(picked, axis=1)
    order = np.argsort(-np.take_along_axis(similarity, picked, axis=1), axis=1, kind="stable")
    nearest = np.take_along_axis(picked, order, axis=1)
    return np.take_along_axis(similarity, nearest, axis=1), nearest


def _vote(similarity: np.ndarray, neighbour_targets: np.ndarray) -> np.ndarray:
    """exp(s / T)-weighted mean of the neighbours' one-hot targets: (queries, k) x (queries, k, classes)."""
    weights = np.exp(similarity / TEMPERATURE)
    votes = np.einsum("qk,qkc->qc", weights, neighbour_targets)
    return votes / weights.sum(axis=1, keepdims=True)
