"""The loop every training protocol shares: optimiser and schedule from the task's recipe,
the recipe's augmentations, model selection, and batched prediction.

Written by hand rather than with Lightning or Ignite: the loop is short, and owning it keeps
the CPU path bit-reproducible and the CUDA path (autocast, channels_last, non-blocking copies)
in one place.

Feeding: a background thread gathers rows from the memory-mapped cache in their stored dtype
(into pinned memory on CUDA) while the device runs the previous step; the main thread copies
them over, maps them (``pipeline.unit``), augments and standardizes them on the device, and
keeps every random draw in a fixed order, so a CPU run stays bit-reproducible. Losses stay on
the device until the epoch ends: no host sync inside a step.

Gradient accumulation: ``recipe.batch_size`` is the effective batch, run as micro-batches that
fit the device, each loss weighted by its share, and one optimiser step per effective batch.
BatchNorm then normalises per micro-batch ("ghost batch norm"), as large-batch training does:
batch statistics over a few hundred images are already precise, and the study's 4096 could
not be one BatchNorm batch on one GPU anyway. The accumulated gradient equals the full batch's
exactly for a per-sample mean loss; a class-weighted or Dice loss is averaged per micro-batch.
"""
from __future__ import annotations

import copy
import hashlib
import logging
import queue
import threading
import time
from dataclasses import dataclass, field
from typing import Callable, Iterable, Literal

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
FEED_DEPTH = 2  # batches gathered ahead: one being copied, one ready


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

    Host: ``gather`` (cached rows in their stored dtype and channels). Device: ``to_model``:
    ``pipeline.unit`` ([0, 1] planes in the checkpoint's channel count) -> the recipe's
    augmentations (training batches only) -> ``pipeline.standardize`` (mean/std).
    """

    images: np.ndarray  # (N, P, H, W) memory map: raw values (uint8, int16, float16/32) or [0, 1] planes
    targets: np.ndarray
    pipeline: InputPipeline
    accel: Accelerator
    segmentation: bool = False
    augmentation: Augmentation = field(default_factory=Augmentation)

    def __post_init__(self):
        self._augment = augmentation(self.augmentation, self.images.shape[-1], self.pipeline.convention.channels)

    def gather(self, rows: np.ndarray) -> Batch:
        """Host side, thread-safe: the rows read in ascending order (sequential pages), returned in ``rows``'s."""
        return self._read(self.images, rows), self._read(self.targets, rows)

    def _read(self, array: np.ndarray, rows: np.ndarray) -> torch.Tensor:
        ascending = np.argsort(rows, kind="stable")
        out = torch.empty((len(rows), *array.shape[1:]), dtype=_torch_dtype(array.dtype),
                          pin_memory=self.accel.is_cuda)
        target = out.numpy()
        for i in ascending:  # row by row straight into ``out``: fancy indexing would copy everything twice
            target[i] = array[rows[i]]
        return out

    def to_model(self, images: torch.Tensor, targets: torch.Tensor, augment: bool = False) -> Batch:
        """Device side, main thread (augmentation draws from torch's global generator)."""
        x = self.pipeline.unit(self.accel.to_device(images))
        y = self.accel.to_device(targets).long()
        if augment:  # photometric transforms are defined on [0, 1]; augment_batch clamps back into it
            x, masks = augment_batch(self._augment, x, y if self.segmentation else None)
            y = masks if self.segmentation else y
        return self.accel.memory_format(self.pipeline.standardize(x)), y

    def inputs(self, rows: np.ndarray, augment: bool = False) -> Batch:
        return self.to_model(*self.gather(rows), augment=augment)


def _torch_dtype(dtype: np.dtype) -> torch.dtype:
    return torch.from_numpy(np.empty(0, dtype=dtype)).dtype


class BatchFeed:
    """``gather`` over ``chunks`` in a background thread, at most ``depth`` batches ahead.

    A context manager: leaving it (normally or on an exception) stops the thread and joins it,
    so a job that fails mid-epoch leaves nothing running. An exception in ``gather`` is raised
    in the consumer. ``waited`` sums the seconds the consumer spent waiting for a batch.
    """

    _DONE = object()

    def __init__(self, gather: Callable[[np.ndarray], Batch], chunks: Iterable[np.ndarray], depth: int = FEED_DEPTH):
        self._queue: queue.Queue = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self.waited = 0.0
        self._thread = threading.Thread(target=self._produce, args=(gather, list(chunks)), daemon=True,
                                        name="ctbench-batch-feed")
        self._thread.start()

    def _produce(self, gather, chunks) -> None:
        try:
            for rows in chunks:
                if not self._put(gather(rows)):
                    return
        except BaseException as exc:  # handed to the consumer, which re-raises it
            self._put(_Failure(exc))
            return
        self._put(self._DONE)

    def _put(self, item) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    def next(self) -> Batch:
        started = time.perf_counter()
        item = self._queue.get()
        self.waited += time.perf_counter() - started
        if isinstance(item, _Failure):
            raise item.exc
        if item is self._DONE:
            raise StopIteration
        return item

    def close(self) -> None:
        self._stop.set()
        self._thread.join()

    def __enter__(self) -> "BatchFeed":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


@dataclass
class _Failure:
    exc: BaseException


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
    micro_batch: int = 0  # images per forward pass; the recipe's batch is the effective one
    history: list[dict] = field(default_factory=list)
    # per epoch: images_per_s, data_wait_fraction; timings, so kept out of the reproducible record
    throughput: list[dict] = field(default_factory=list)
    seen: set = field(default_factory=set)  # training rows presented at least once
    selection_fallback: str | None = None  # why the last epoch was kept although "val" was asked for
    effective_batch: int = 0

    @property
    def accumulation_steps(self) -> int:
        return int(np.ceil(self.effective_batch / self.micro_batch)) if self.micro_batch else 1

    def as_dict(self) -> dict:
        return {"selection": self.selection, "selected_epoch": self.selected_epoch, "steps": self.steps,
                "selection_fallback": self.selection_fallback, "micro_batch": self.micro_batch,
                "accumulation_steps": self.accumulation_steps, "train_cases_seen": len(self.seen),
                "history": self.history}


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
    log = FitLog(selection=recipe.selection, selected_epoch=0, steps=0, effective_batch=recipe.batch_size,
                 micro_batch=first_micro_batch(recipe.batch_size, data.accel))
    best_score, best_state = None, None
    for epoch in range(1, epochs + 1):
        record = {"epoch": epoch, **_train_epoch(model, loss_fn, data, train_rows, recipe, optimizer, scaler,
                                                 order_rng, frozen, frozen_bn, max_steps - log.steps, log)}
        speed = {"epoch": epoch, **{key: record.pop(key) for key in ("images_per_s", "data_wait_fraction")}}
        log.throughput.append(speed)
        schedule.step()
        if recipe.selection == "val" and validate is not None and (epoch % check_every == 0 or epoch == epochs):
            record["val"] = score = validate(model)
            if np.isfinite(score) and (best_score is None or _better(score, best_score, higher_is_better)):
                best_score, best_state, log.selected_epoch = score, copy.deepcopy(model.state_dict()), epoch
        log.history.append(record)
        logger.info("epoch %d: %d steps, train loss %.4f, %.0f img/s, waited for data %.0f %%%s", epoch, log.steps,
                    record["train_loss"], speed["images_per_s"], 100 * speed["data_wait_fraction"],
                    f", validation {record['val']:.4f}" if "val" in record else "")
    if best_state is not None:
        model.load_state_dict(best_state)
        return log
    if recipe.selection == "val":  # e.g. AUC on a validation split with one class
        log.selection_fallback = "no finite validation score"
        logger.warning("no epoch had a finite validation score: keeping the last epoch instead")
    log.selected_epoch, log.selection = log.history[-1]["epoch"], "last"
    return log


def first_micro_batch(batch_size: int, accel: Accelerator) -> int:
    """The recipe's batch, or the accelerator's cap; on CUDA a step halves it on out-of-memory."""
    return min(batch_size, accel.micro_batch) if accel.micro_batch else batch_size


def _train_epoch(model, loss_fn, data: SliceBatches, train_rows, recipe, optimizer, scaler, order_rng, frozen,
                 frozen_bn, steps_left, log: FitLog) -> dict:
    """One pass; restarted from the failed step with half the micro-batch when CUDA runs out of memory."""
    _train_mode(model, frozen, frozen_bn)
    order = train_rows[torch.randperm(len(train_rows), generator=order_rng).numpy()]
    chunks = [order[c] for c in _training_chunks(len(order), recipe.batch_size)]
    chunks = chunks[: int(steps_left)] if np.isfinite(steps_left) else chunks
    loss_sum = torch.zeros((), device=data.accel.device)
    done, waited, started = 0, 0.0, time.perf_counter()
    while done < len(chunks):
        parts = [_micro_chunks(rows, log.micro_batch) for rows in chunks[done:]]
        out_of_memory = False
        with BatchFeed(data.gather, [part for split in parts for part in split]) as feed:
            try:
                for rows, split in zip(chunks[done:], parts):
                    loss_sum += _step(model, loss_fn, data, feed, split, len(rows), optimizer, scaler)
                    log.seen.update(rows.tolist())
                    done += 1
            except torch.cuda.OutOfMemoryError:
                if not data.accel.is_cuda or log.micro_batch <= 1:
                    raise
                out_of_memory = True
            finally:
                waited += feed.waited
        if out_of_memory:  # outside the handler, so the failed step's tensors are free to release
            optimizer.zero_grad(set_to_none=True)
            torch.cuda.empty_cache()
            log.micro_batch //= 2
            logger.warning("out of device memory: micro-batch halved to %d", log.micro_batch)
    mean_loss = float(loss_sum) / max(done, 1)  # the epoch's one host sync
    wall = time.perf_counter() - started
    log.steps += done
    return {"steps": log.steps, "train_loss": mean_loss, "images_per_s": sum(map(len, chunks)) / wall,
            "data_wait_fraction": waited / wall}


def _step(model, loss_fn, data: SliceBatches, feed: BatchFeed, split: list[np.ndarray], effective: int,
          optimizer, scaler) -> torch.Tensor:
    """One optimiser step over an effective batch: each micro-batch's mean loss weighted by its share."""
    optimizer.zero_grad(set_to_none=True)
    total = torch.zeros((), device=data.accel.device)
    for rows in split:
        x, y = data.to_model(*feed.next(), augment=True)
        with data.accel.autocast():
            loss = loss_fn(model(x), y) * (len(rows) / effective)
        scaler.scale(loss).backward()
        total += loss.detach().float()
    scaler.step(optimizer)
    scaler.update()
    return total


def _train_mode(model: nn.Module, frozen: nn.Module | None, frozen_bn: str) -> None:
    model.train()
    if frozen is not None:
        frozen.eval()
        if frozen_bn == "train":
            for module in frozen.modules():
                if isinstance(module, nn.modules.batchnorm._BatchNorm):
                    module.train()


def _micro_chunks(rows: np.ndarray, micro_batch: int) -> list[np.ndarray]:
    """Near-equal parts (sizes differ by at most one), so no micro-batch is a lone straggler."""
    return np.array_split(rows, int(np.ceil(len(rows) / micro_batch)))


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
    chunks = batches(len(rows), batch_size)
    with BatchFeed(data.gather, [rows[chunk] for chunk in chunks]) as feed:
        for _ in chunks:
            x, _ = data.to_model(*feed.next())
            with data.accel.autocast():
                out.append(head(model(x).float()).cpu().numpy())
    return np.concatenate(out)
