"""How alike two checkpoints' stages are, and how redundant the filters inside one stage are."""
from __future__ import annotations

import itertools

import numpy as np

from benchmark.analysis.activations import channel_groups
from benchmark.analysis.cka import linear_cka

GROUPS = 4


def pairwise_cka(activations: dict[str, dict[str, np.ndarray]]) -> dict[str, list[list[float]]]:
    """{stage: square matrix of linear CKA}, rows and columns in the order of ``activations``
    (checkpoint -> stage -> activations on the same inputs); symmetric, so each pair is computed once."""
    names = list(activations)
    stages = list(activations[names[0]]) if names else []
    out = {}
    for stage in stages:
        matrix = np.eye(len(names))
        for i, j in itertools.combinations(range(len(names)), 2):
            matrix[i, j] = matrix[j, i] = linear_cka(activations[names[i]][stage], activations[names[j]][stage])
        out[stage] = matrix.tolist()
    return out


def filter_uniqueness(activations: np.ndarray, groups: int = GROUPS) -> float:
    """1 - the mean linear CKA over all pairs of ``groups`` disjoint blocks of channels.

    Near 0: any block of filters already says what the others say (redundant filters);
    near 1: each block encodes something the others do not. Pairs whose CKA is undefined
    (a block that is constant on every input, e.g. dead ReLUs) are left out of the mean;
    NaN if no pair is defined. A transformer's "filters" are its embedding dimensions (the
    channels of its tokens laid out on the patch grid), split the same way.
    """
    blocks = channel_groups(activations, groups)
    values = [linear_cka(a, b) for a, b in itertools.combinations(blocks, 2)]
    finite = [v for v in values if np.isfinite(v)]
    return 1.0 - float(np.mean(finite)) if finite else float("nan")
