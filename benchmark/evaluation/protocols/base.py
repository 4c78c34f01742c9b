"""What a protocol receives (a job's context) and returns (an outcome)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable, Optional

import numpy as np
import torch
from torch import nn

from benchmark.core.errors import JobError
from benchmark.core.specs import CheckpointSpec, TaskSpec
from benchmark.evaluation.accel import Accelerator
from benchmark.evaluation.inputs import InputPipeline
from benchmark.evaluation.metrics import score
from benchmark.evaluation.profiles import PROFILES, ProfileSettings
from benchmark.evaluation.protocols.training_state import Checkpointing
from benchmark.models.backbones import is_transformer

if TYPE_CHECKING:  # importing slices pulls in MONAI, which a finished grid never needs
    from benchmark.data.slices import SliceSet


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
    backbone: Optional[Callable[[], nn.Module]] = None  # a fresh copy of the checkpoint's model, for training
    accel: Accelerator = field(default_factory=lambda: Accelerator(torch.device("cpu")))
    profile: ProfileSettings = PROFILES["demo"]
    inputs: Optional[InputPipeline] = None  # cached rows -> network input in the checkpoint's convention
    max_epochs: Optional[int] = None  # a run's cap on every recipe's epochs
    checkpointing: Optional[Checkpointing] = None  # where a training protocol saves its resumable state

    def __post_init__(self):
        if self.inputs is None:  # slices already in [0, 1], the checkpoint's own convention
            self.inputs = InputPipeline(self.checkpoint.input, self.task.domain)

    def recipe(self):
        """The task's recipe as the profile (and a run's epoch cap) adapts it."""
        recipe = self.profile.training(self.task.training, transformer=is_transformer(self.checkpoint.arch),
                                       task=self.task.name)
        if self.max_epochs is not None and recipe.epochs > self.max_epochs:
            recipe = recipe.model_copy(update={"epochs": self.max_epochs})
        return recipe

    def score(self, rows: np.ndarray, predictions: dict[str, np.ndarray]) -> dict[str, float]:
        """The task's metrics on ``rows`` (validation or test), from what would be saved."""
        return score(self.task, self.slices.labels[rows], self.slices.patient_ids[rows], predictions)

    def model(self) -> nn.Module:
        if self.backbone is None:
            raise JobError(f"no model source given for checkpoint {self.checkpoint.name}")
        return self.backbone()


@dataclass
class Outcome:
    metrics: dict[str, float]
    hyperparameters: dict
    predictions: dict[str, np.ndarray]  # saved beside the result; rows aligned with JobContext.test
    notes: dict = field(default_factory=dict)


class Protocol:
    name: str
    version: str
    kinds: frozenset[str] = frozenset()  # the task kinds it can evaluate
    uses_features: bool = False
    trains: bool = False  # runs ``fit``: resumable, and shared by every device of a distributed job

    def run(self, ctx: JobContext) -> Outcome:
        raise NotImplementedError
