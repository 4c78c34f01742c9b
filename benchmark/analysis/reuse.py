"""Feature reuse, as the study measured it: finetune a copy of a pretrained backbone on the
task, then compare each stage's activations before and after on the task's test slices.

A stage whose CKA stays near 1 kept its representation through finetuning (its features were
reused); a low CKA means finetuning rewrote it.
"""
from __future__ import annotations

import copy
import dataclasses

import numpy as np
from torch import nn

from benchmark.analysis.activations import StageLayout, stage_activations
from benchmark.analysis.cka import RBF_FRACTION, linear_cka, rbf_cka
from benchmark.evaluation.accel import seed_everything
from benchmark.evaluation.protocols import PROTOCOLS, JobContext, Outcome

Activations = dict[str, np.ndarray]  # stage -> (n, features)

REUSE_PROTOCOL = "finetune"


def finetune_copy(pretrained: nn.Module, ctx: JobContext) -> tuple[nn.Module, Outcome]:
    """A finetuned deep copy, and the protocol's outcome; ``pretrained`` is left as it was.

    The protocol trains ``ctx.model()`` in place (its classifier wraps the backbone), so
    handing it our copy leaves the finetuned weights in that copy. Seeded right before
    training, as the runner seeds a job, so a rerun trains the same copy bit for bit.
    """
    tuned = copy.deepcopy(pretrained)
    seed_everything(ctx.seed)
    outcome = PROTOCOLS.get(REUSE_PROTOCOL).run(dataclasses.replace(ctx, backbone=lambda: tuned))
    return tuned, outcome


def stage_cka(before: Activations, after: Activations, fraction: float = RBF_FRACTION) -> dict[str, dict[str, float]]:
    """{"linear": {stage: CKA}, "rbf": {stage: CKA}} between two models' activations on the same inputs."""
    return {"linear": {stage: linear_cka(before[stage], after[stage]) for stage in before},
            "rbf": {stage: rbf_cka(before[stage], after[stage], fraction) for stage in before}}


def feature_reuse(pretrained: nn.Module, ctx: JobContext, rows: np.ndarray, fraction: float = RBF_FRACTION,
                  stages: StageLayout | None = None) -> tuple[Activations, dict]:
    """(the pretrained activations on ``ctx.slices`` rows ``rows``, {"linear": {stage: CKA},
    "rbf": {...}, "finetune_metrics": the copy's test metrics, "selected_epoch": ...}).

    The pretrained activations come back too: the other measurements reuse them. ``stages``:
    the model's own layout (``stage_layout``) by default; the finetuned copy is read at the same.
    """
    batch = ctx.profile.batch_size
    before = stage_activations(pretrained, ctx.slices.images, ctx.inputs, ctx.accel, batch, rows, stages)
    tuned, outcome = finetune_copy(pretrained, ctx)
    after = stage_activations(tuned, ctx.slices.images, ctx.inputs, ctx.accel, batch, rows, stages)
    return before, {**stage_cka(before, after, fraction), "finetune_metrics": outcome.metrics,
                    "selected_epoch": outcome.hyperparameters.get("selected_epoch")}
