"""``finetune``: the whole network trained end to end with a new linear head.

The task's recipe (optimiser, learning rate, decay, batch, epochs, class weights,
augmentations, head bias; see recipes.py) as the profile adapts it, and model selection on
the in-budget validation split or the last epoch, whichever the recipe says; the choice and
the per-epoch curve are recorded. ``linear-study`` (study_linear.py) reuses this loop with the
encoder frozen.
"""
from __future__ import annotations

from typing import Literal

import numpy as np
import torch
from torch import nn

from benchmark.core.errors import JobError
from benchmark.evaluation.protocols.augment import describe
from benchmark.evaluation.protocols.base import JobContext, Outcome, Protocol
from benchmark.evaluation.protocols.feed import SliceBatches, predict
from benchmark.evaluation.protocols.trainer import check_frozen, fit, parameters_sha256


class Classifier(nn.Module):
    """A backbone that returns pooled features, and a fresh linear head on top."""

    def __init__(self, backbone: nn.Module, n_outputs: int, image: torch.Tensor, bias: bool = True):
        super().__init__()
        self.backbone = backbone
        with torch.no_grad():  # the width, from one forward pass: not every backbone sets num_features
            width = backbone.eval()(image).shape[1]
        self.head = nn.Linear(width, n_outputs, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(x))


def classification_loss(kind: str, class_weights: list[float] | None, n_outputs: int,
                        device: torch.device) -> tuple[nn.Module, dict]:
    """Cross-entropy with class weights, or a multilabel BCE with per-label weights; and its record."""
    if class_weights is not None and len(class_weights) != n_outputs:
        raise JobError(f"{len(class_weights)} class weights for {n_outputs} "
                       f"{'labels' if kind == 'multilabel' else 'classes'}")
    weights = torch.tensor(class_weights, dtype=torch.float32, device=device) if class_weights else None
    record = {"loss": "bce" if kind == "multilabel" else "cross_entropy",
              "loss_weights": list(class_weights) if class_weights else None}
    if kind == "multilabel":  # the weight broadcasts over the batch: one factor per label
        loss_fn = nn.BCEWithLogitsLoss(weight=weights)
        return (lambda logits, y: loss_fn(logits, y.float())), record  # batches carry integer 0/1 targets
    return nn.CrossEntropyLoss(weight=weights), record


class Finetune(Protocol):
    name = "finetune"
    version = "1"
    kinds = frozenset({"classification", "multilabel"})
    trains = True
    freeze_encoder: bool = False  # True: only the head trains (linear-study)
    frozen_bn: Literal["eval", "train"] = "eval"  # a frozen encoder's BatchNorm mode while training

    def run(self, ctx: JobContext) -> Outcome:
        task, recipe = ctx.task, ctx.recipe()
        multilabel = task.kind == "multilabel"
        data = SliceBatches(ctx.slices.images, ctx.slices.labels, ctx.inputs, ctx.accel,
                            augmentation=recipe.augmentation)
        probe, _ = data.inputs(ctx.train[:2])
        n_outputs = len(task.class_names)
        classifier = Classifier(ctx.model(), n_outputs, probe.cpu().float(), bias=recipe.head_bias)
        encoder = classifier.backbone
        if self.freeze_encoder:
            encoder.requires_grad_(False)
        encoder_before = parameters_sha256(encoder) if self.freeze_encoder else ""
        model = ctx.accel.prepare(classifier)
        loss_fn, loss_record = classification_loss(task.kind, recipe.class_weights, n_outputs, ctx.accel.device)
        head = torch.sigmoid if multilabel else (lambda logits: logits.softmax(1))
        batch = ctx.profile.batch_size

        def probabilities(rows: np.ndarray) -> dict[str, np.ndarray]:
            return {"probabilities": predict(model, data, rows, batch, head)}

        def validate(m: nn.Module) -> float:
            return ctx.score(ctx.val, probabilities(ctx.val))[task.main_metric]

        log = fit(model, loss_fn, data, ctx.train, recipe, ctx.seed, validate,
                  frozen=encoder if self.freeze_encoder else None, frozen_bn=self.frozen_bn,
                  higher_is_better=task.higher_is_better, checkpointing=ctx.checkpointing)
        frozen = {}
        if self.freeze_encoder:
            frozen = {"encoder_frozen": True, "encoder_batchnorm": self.frozen_bn,
                      "encoder_params_sha256": check_frozen(self.name, encoder, encoder_before)}
        predictions = probabilities(ctx.test)
        return Outcome(ctx.score(ctx.test, predictions),
                       {"recipe": recipe.model_dump(mode="json"), "augmentation": describe(recipe.augmentation),
                        "head_bias": recipe.head_bias, **frozen, **loss_record, **log.as_dict()},
                       predictions, notes={"throughput": log.throughput, "resumed": log.resumed})
