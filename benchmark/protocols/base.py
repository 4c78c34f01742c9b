"""What a protocol receives (a job's context) and returns (an outcome)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable

import numpy as np

from ..specs import CheckpointSpec, TaskSpec

if TYPE_CHECKING:  # importing slices pulls in MONAI, which a finished grid never needs
    from ..slices import SliceSet


@dataclass
class JobContext:
    task: TaskSpec
    checkpoint: CheckpointSpec
    slices: "SliceSet"
    train: np.ndarray  # row indices into ``slices``
    val: np.ndarray
    test: np.ndarray
    seed: int
    features: Callable[[], np.ndarray]  # cached frozen-backbone features, computed on first call


@dataclass
class Outcome:
    metrics: dict[str, float]
    hyperparameters: dict
    probabilities: np.ndarray  # test-set predictions, rows aligned with JobContext.test
    notes: dict = field(default_factory=dict)


class Protocol:
    name: str
    version: str
    kinds: frozenset[str] = frozenset()  # the task kinds it can evaluate
    uses_features: bool = False

    def run(self, ctx: JobContext) -> Outcome:
        raise NotImplementedError
