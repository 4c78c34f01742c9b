"""``finetune``: the whole network trained end to end with a new linear head.

The task's recipe (optimiser, learning rate, decay, batch, epochs, class weights; see
recipes.py) as the profile adapts it, the study's light augmentations, and model
selection on the in-budget validation split or the last epoch, whichever the recipe
says; the choice and the per-epoch curve are recorded.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from benchmark.evaluation.protocols.augment import describe as augmentation
from benchmark.evaluation.protocols.base import JobContext, Outcome, Protocol
from benchmark.evaluation.protocols.trainer import SliceBatches, fit, predict


class Classifier(nn.Module):
    """A backbone that returns pooled features, and a fresh linear head on top."""

    def __init__(self, backbone: nn.Module, n_outputs: int, image: torch.Tensor):
        super().__init__()
        self.backbone = backbone
        with torch.no_grad():  # the width, from one forward pass: not every backbone sets num_features
            width = backbone.eval()(image).shape[1]
        self.head = nn.Linear(width, n_outputs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(x))


class Finetune(Protocol):
    name = "finetune"
    version = "1"
    kinds = frozenset({"classification", "multilabel"})

    def run(self, ctx: JobContext) -> Outcome:
        task, recipe = ctx.task, ctx.profile.training(ctx.task.training)
        multilabel = task.kind == "multilabel"
        data = SliceBatches(ctx.slices.images, ctx.slices.labels, ctx.checkpoint, ctx.accel)
        probe, _ = data.inputs(ctx.train[:2])
        model = ctx.accel.prepare(Classifier(ctx.model(), len(task.class_names), probe.cpu().float()))
        if multilabel:
            loss_fn = nn.BCEWithLogitsLoss()
        else:
            weights = torch.tensor(recipe.class_weights, device=ctx.accel.device) if recipe.class_weights else None
            loss_fn = nn.CrossEntropyLoss(weight=weights)
        head = torch.sigmoid if multilabel else (lambda logits: logits.softmax(1))
        batch = ctx.profile.batch_size

        def probabilities(rows: np.ndarray) -> dict[str, np.ndarray]:
            return {"probabilities": predict(model, data, rows, batch, head)}

        def validate(m: nn.Module) -> float:
            return ctx.score(ctx.val, probabilities(ctx.val))[task.main_metric]

        log = fit(model, _float_targets(loss_fn, multilabel), data, ctx.train, recipe, ctx.seed, validate,
                  higher_is_better=task.higher_is_better)
        predictions = probabilities(ctx.test)
        return Outcome(ctx.score(ctx.test, predictions),
                       {"recipe": recipe.model_dump(mode="json"), "augmentation": augmentation(),
                        "loss": "bce" if multilabel else "cross_entropy", **log.as_dict()},
                       predictions)


def _float_targets(loss_fn: nn.Module, multilabel: bool):
    """Batches carry integer targets; BCE wants the 0/1 labels as floats."""
    return (lambda logits, y: loss_fn(logits, y.float())) if multilabel else loss_fn
