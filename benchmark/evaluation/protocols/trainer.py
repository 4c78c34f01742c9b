"""The loop every training protocol shares: optimiser and schedule from the task's recipe,
the recipe's augmentations, model selection, and batched prediction.

Written by hand rather than with Lightning or Ignite: the loop is forty lines, and owning
it keeps the CPU path bit-reproducible and the CUDA path (autocast, channels_last,
non-blocking copies) in one place.
"""
from __future__ import annotations

import copy
import hashlib
import logging
from dataclasses import dataclass, field
from typing import Callable, Literal

import numpy as np
import torch
from torch import nn

from benchmark.core.errors import JobError
from benchmark.core.specs import Augmentation, TrainingRecipe
from benchmark.evaluation.accel import Accelerator, batches
from benchmark.evaluation.inputs import InputPipeline
from benchmark.evaluation.protocols.augment import augment_batch, augmentation

Batch = tuple[torch.Tensor, torch.Tensor]
logger = logging.getLogger(__name__)
MAX_VALIDATIONS = 8  # model selection looks at most this many epochs, evenly spaced, and always the last


def make_optimizer(params, recipe: TrainingRecipe) -> torch.optim.Optimizer:
    if recipe.optimizer == "lars":  # the study's body-region optimiser, as lightly implements it
        from lightly.utils.lars import LARS

        return LARS(params, lr=recipe.lr, momentum=0.9, weight_decay=recipe.weight_decay)
    if recipe.optimizer == "sgd":
        return torch.optim.SGD(params, lr=recipe.lr, momentum=0.9, weight_decay=recipe.weight_decay)
    return torch.optim.AdamW(params, lr=recipe.lr, weight_decay=recipe.weight_decay)


def make_schedule(optimizer: torch.optim.Optimizer, recipe: TrainingRecipe):
    """Stepped once per epoch, as the study's decay factors are per epoch."""
    if recipe.schedule == "step":
        return torch.optim.lr_scheduler.StepLR(optimizer, step_size=recipe.step_size, gamma=recipe.decay)
    return torch.optim.lr_scheduler.ExponentialLR(optimizer, gamma=recipe.decay)


@dataclass
class SliceBatches:
    """Rows of a slice array as augmented model inputs, in the checkpoint's convention, on the device.

    Cached rows -> ``pipeline.unit`` ([0, 1] planes in the checkpoint's channel count) -> the
    recipe's augmentations (training batches only) -> ``pipeline.standardize`` (mean/std).
    """

    images: np.ndarray  # float16 (N, C, H, W): [0, 1] planes, or raw values the pipeline maps
    targets: np.ndarray
    pipeline: InputPipeline
    accel: Accelerator
    segmentation: bool = False
    augmentation: Augmentation = field(default_factory=Augmentation)

    def __post_init__(self):
        self._augment = augmentation(self.augmentation, self.images.shape[-1], self.pipeline.convention.channels)

    def inputs(self, rows: np.ndarray, augment: bool = False) -> Batch:
        x = self.pipeline.unit(torch.from_numpy(self.images[rows].astype(np.float32)))
        y = torch.from_numpy(self.targets[rows].astype(np.int64))
        if augment:  # photometric transforms are defined on [0, 1]; augment_batch clamps back into it
            x, masks = augment_batch(self._augment, x, y if self.segmentation else None)
            y = masks if self.segmentation else y
        return self.accel.to_device(self.pipeline.standardize(x)), self.accel.to_device(y)


def parameters_sha256(module: nn.Module) -> str:
    """Weights only, bit for bit (buffers such as BatchNorm statistics left out)."""
    digest = hashlib.sha256()
    for name, tensor in sorted(module.named_parameters(), key=lambda item: item[0]):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def check_frozen(name: str, encoder: nn.Module, before: str) -> dict:
    """A frozen encoder's weights must come out bit-identical (its buffers may move)."""
    after = parameters_sha256(encoder)
    if after != before:
        raise JobError(f"{name} changed its frozen encoder's weights (sha256 {before[:12]} -> {after[:12]}): "
                       "a bug, please report it")
    return {"before": before, "after": after}


@dataclass
class FitLog:
    selection: str
    selected_epoch: int
    steps: int
    history: list[dict] = field(default_factory=list)
    seen: set = field(default_factory=set)  # training rows presented at least once

    def as_dict(self) -> dict:
        return {"selection": self.selection, "selected_epoch": self.selected_epoch, "steps": self.steps,
                "train_cases_seen": len(self.seen), "history": self.history}


def fit(model: nn.Module, loss_fn: Callable, data: SliceBatches, train_rows: np.ndarray, recipe: TrainingRecipe,
        seed: int, validate: Callable[[nn.Module], float] | None, frozen: nn.Module | None = None,
        higher_is_better: bool = True, frozen_bn: Literal["eval", "train"] = "eval") -> FitLog:
    """Train ``model`` in place; with ``selection == "val"`` it ends holding its best epoch.

    ``frozen`` (an encoder whose parameters have ``requires_grad`` False) stays in eval mode
    throughout by default, so not even its BatchNorm statistics move: a frozen-encoder protocol
    must leave it bit-identical. ``frozen_bn="train"`` puts its BatchNorm layers (only those) in
    train mode while training, so their running statistics adapt to the task, as the study's
    linear evaluation did; its weights still get no gradients.
    """
    if frozen_bn not in ("eval", "train"):
        raise ValueError(f"frozen_bn must be 'eval' or 'train', not {frozen_bn!r}")
    if len(train_rows) < 2:
        raise JobError(f"{len(train_rows)} training case(s): too few to train on; use a larger data scale")
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer, scaler = make_optimizer(trainable, recipe), data.accel.grad_scaler()
    schedule = make_schedule(optimizer, recipe)
    order_rng = torch.Generator().manual_seed(seed)
    max_steps = recipe.max_steps or np.inf
    epochs = int(min(recipe.epochs, np.ceil(max_steps / len(_training_chunks(len(train_rows), recipe.batch_size)))))
    check_every = max(1, epochs // MAX_VALIDATIONS)
    log = FitLog(selection=recipe.selection, selected_epoch=0, steps=0)
    best_score, best_state = None, None
    for epoch in range(1, epochs + 1):
        losses = _train_epoch(model, loss_fn, data, train_rows, recipe, optimizer, scaler, order_rng, frozen,
                              frozen_bn, max_steps - log.steps, log.seen)
        schedule.step()
        log.steps += len(losses)
        record = {"epoch": epoch, "steps": log.steps, "train_loss": float(np.mean(losses))}
        if recipe.selection == "val" and validate is not None and (epoch % check_every == 0 or epoch == epochs):
            record["val"] = score = validate(model)
            if np.isfinite(score) and (best_score is None or _better(score, best_score, higher_is_better)):
                best_score, best_state, log.selected_epoch = score, copy.deepcopy(model.state_dict()), epoch
        log.history.append(record)
        logger.info("epoch %d: %d steps, train loss %.4f%s", epoch, log.steps, record["train_loss"],
                    f", validation {record['val']:.4f}" if "val" in record else "")
    if best_state is not None:
        model.load_state_dict(best_state)
    else:  # "last" was asked for, or no validation score was defined (e.g. AUC on one class)
        log.selected_epoch, log.selection = log.history[-1]["epoch"], "last"
    return log


def _train_epoch(model, loss_fn, data: SliceBatches, train_rows, recipe, optimizer, scaler, order_rng, frozen,
                 frozen_bn, steps_left, seen: set) -> list[float]:
    model.train()
    if frozen is not None:
        frozen.eval()
        if frozen_bn == "train":
            for module in frozen.modules():
                if isinstance(module, nn.modules.batchnorm._BatchNorm):
                    module.train()
    order = train_rows[torch.randperm(len(train_rows), generator=order_rng).numpy()]
    losses = []
    for chunk in _training_chunks(len(order), recipe.batch_size):
        if len(losses) >= steps_left:
            break
        seen.update(order[chunk].tolist())
        x, y = data.inputs(order[chunk], augment=True)
        with data.accel.autocast():
            loss = loss_fn(model(x), y)
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        losses.append(float(loss.detach()))
    return losses


def _training_chunks(n: int, batch_size: int) -> list[np.ndarray]:
    """A trailing batch of one is folded into the previous one: BatchNorm cannot train on it."""
    chunks = batches(n, batch_size)
    if len(chunks) > 1 and len(chunks[-1]) == 1:
        chunks[-2] = np.concatenate(chunks[-2:])
        chunks.pop()
    return chunks


def _better(score: float, best: float, higher_is_better: bool) -> bool:
    """Strictly better: ties keep the earlier epoch."""
    return score > best if higher_is_better else score < best


@torch.inference_mode()
def predict(model: nn.Module, data: SliceBatches, rows: np.ndarray, batch_size: int,
            head: Callable[[torch.Tensor], torch.Tensor]) -> np.ndarray:
    """``head`` maps logits to what is saved: probabilities, or a label map per slice."""
    model.eval()
    out = []
    for chunk in batches(len(rows), batch_size):
        x, _ = data.inputs(rows[chunk])
        with data.accel.autocast():
            out.append(head(model(x).float()).cpu().numpy())
    return np.concatenate(out)
