"""The loop every training protocol shares: optimiser and schedule from the task's recipe,
the recipe's augmentations, model selection, and batched prediction.

Written by hand rather than with Lightning or Ignite: the loop is short, and owning it keeps
the CPU path bit-reproducible and the CUDA path (autocast, channels_last, non-blocking copies)
in one place.

Feeding (``feed.py``): rows are gathered in a background thread and augmented on the device.
Losses stay on the device until the epoch ends: no host sync inside a step.

Random draws: each micro-batch's (augmentation, and any dropout) come from the generators
seeded by (seed, epoch, step, micro-batch index), so they depend neither on what ran before,
nor on how many devices share the batch, nor on where a resumed job picked up.

Resuming (``training_state.py``): the loop's whole state is saved every few minutes, and when
a stop is requested, at a step boundary (signals are held back inside a step); a rerun of the
job continues from it.

Several devices (``evaluation/distributed.py``): each rank takes its contiguous share of an
effective batch's micro-batches; the effective batch stays the recipe's.

Gradient accumulation: ``recipe.batch_size`` is the effective batch, run as micro-batches that
fit the device, each loss weighted by its share, and one optimiser step per effective batch.
BatchNorm then normalises per micro-batch ("ghost batch norm"), as large-batch training does:
batch statistics over a few hundred images are already precise, and the study's 4096 could
not be one BatchNorm batch on one GPU anyway. The accumulated gradient equals the full batch's
exactly for a per-sample mean loss; a class-weighted or Dice loss is averaged per micro-batch.
"""
from __future__ import annotations

import contextlib
import copy
import hashlib
import logging
import time
from dataclasses import dataclass, field
from typing import Callable, Literal

import numpy as np
import torch
from torch import nn

from benchmark.core import interrupts
from benchmark.core.errors import JobError
from benchmark.core.specs import TrainingRecipe
from benchmark.evaluation import distributed
from benchmark.evaluation.accel import Accelerator, batches
from benchmark.evaluation.protocols.feed import BatchFeed, SliceBatches
from benchmark.evaluation.protocols.param_groups import param_groups
from benchmark.evaluation.protocols.training_state import Checkpointing, rng_states, set_rng_states

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
    world_size: int = 1  # devices sharing each effective batch
    resumed: list[dict] = field(default_factory=list)  # where each resume picked up; kept out of the record

    @property
    def accumulation_steps(self) -> int:
        """Micro-batches per device and optimiser step."""
        if not self.micro_batch:
            return 1
        return _micro_count(self.effective_batch, self.micro_batch, self.world_size) // self.world_size

    def as_dict(self) -> dict:
        return {"selection": self.selection, "selected_epoch": self.selected_epoch, "steps": self.steps,
                "selection_fallback": self.selection_fallback, "micro_batch": self.micro_batch,
                "accumulation_steps": self.accumulation_steps, "train_cases_seen": len(self.seen),
                "history": self.history}


class FollowerFinished(BaseException):
    """Raised on ranks other than 0 when training ends: rank 0 alone selects, predicts and writes."""


def fit(model: nn.Module, loss_fn: Callable, data: SliceBatches, train_rows: np.ndarray, recipe: TrainingRecipe,
        seed: int, validate: Callable[[nn.Module], float] | None, frozen: nn.Module | None = None,
        higher_is_better: bool = True, frozen_bn: Literal["eval", "train"] = "eval",
        checkpointing: Checkpointing | None = None) -> FitLog:
    """Train ``model`` in place; with ``selection == "val"`` it ends holding its best epoch.

    ``frozen`` (an encoder whose parameters have ``requires_grad`` False) stays in eval mode
    throughout by default, so not even its BatchNorm statistics move: a frozen-encoder protocol
    must leave it bit-identical. ``frozen_bn="train"`` puts its BatchNorm layers (only those) in
    train mode while training, so their running statistics adapt to the task, as the study's
    linear evaluation did; its weights still get no gradients.

    ``checkpointing``: where the loop's state is saved (and resumed from when a saved state of
    the same set-up is there). In a distributed world, ranks other than 0 raise
    ``FollowerFinished`` when training ends.
    """
    if frozen_bn not in ("eval", "train"):
        raise ValueError(f"frozen_bn must be 'eval' or 'train', not {frozen_bn!r}")
    if len(train_rows) < max(2, distributed.current().size):
        raise JobError(f"{len(train_rows)} training case(s): too few to train on"
                       f"{' across ' + str(distributed.current().size) + ' devices' if len(train_rows) >= 2 else ''}; "
                       "use a larger data scale")
    run = _Training(model, loss_fn, data, train_rows, recipe, seed, frozen, frozen_bn, checkpointing)
    log = run.train(validate, higher_is_better)
    if not run.world.is_main:
        raise FollowerFinished()
    return log


def first_micro_batch(batch_size: int, accel: Accelerator, world_size: int = 1) -> int:
    """Each device's share of the recipe's batch, or the accelerator's cap; on CUDA a step halves
    it on out-of-memory."""
    share = int(np.ceil(batch_size / world_size))
    return min(share, accel.micro_batch) if accel.micro_batch else share


class _Training:
    """One ``fit``: the loop, its state, and the state's save and restore."""

    def __init__(self, model, loss_fn, data: SliceBatches, train_rows, recipe: TrainingRecipe, seed: int, frozen,
                 frozen_bn: str, checkpointing: Checkpointing | None):
        self.model, self.loss_fn, self.data, self.train_rows, self.recipe = model, loss_fn, data, train_rows, recipe
        self.seed, self.frozen, self.frozen_bn = seed, frozen, frozen_bn
        self.world = distributed.current()
        self.device = data.accel.device
        self.net = distributed.wrap(model, self.device) if self.world.distributed else model
        self.batchnorm = distributed.batchnorm_layers(model) if self.world.distributed else []
        self.optimizer, self.scaler = make_optimizer(param_groups(model, recipe), recipe), data.accel.grad_scaler()
        self.schedule = make_schedule(self.optimizer, recipe)
        self.order_rng = torch.Generator().manual_seed(seed)
        self.max_steps = recipe.max_steps or np.inf
        n_chunks = len(_training_chunks(len(train_rows), recipe.batch_size, self.world.size))
        self.epochs = int(min(recipe.epochs, np.ceil(self.max_steps / n_chunks)))
        self.log = FitLog(selection=recipe.selection, selected_epoch=0, steps=0, effective_batch=recipe.batch_size,
                          micro_batch=first_micro_batch(recipe.batch_size, data.accel, self.world.size),
                          world_size=self.world.size)
        self.best_score, self.best_state = None, None
        self.epoch, self.order, self.done = 1, None, 0  # the epoch in training, its row order, its steps done
        self.loss_sum = torch.zeros((), device=self.device)
        self.checkpointing = checkpointing
        if checkpointing is not None:
            checkpointing.identity = {**checkpointing.identity, "world_size": self.world.size,
                                      "micro_batch": self.log.micro_batch, "device": self.device.type,
                                      "precision": data.accel.precision}

    # ------------------------------------------------------------------ the loop

    def train(self, validate, higher_is_better: bool) -> FitLog:
        self._resume()
        check_every = max(1, self.epochs // MAX_VALIDATIONS)
        with interrupts.deferred() as pending:
            self.pending = pending
            while self.epoch <= self.epochs:
                epoch = self.epoch
                record = {"epoch": epoch, **self._train_epoch()}
                speed = {"epoch": epoch, **{key: record.pop(key) for key in ("images_per_s", "data_wait_fraction")}}
                self.log.throughput.append(speed)
                self.schedule.step()
                if validate is not None and self.recipe.selection == "val" and self.world.is_main \
                        and (epoch % check_every == 0 or epoch == self.epochs):
                    record["val"] = score = validate(self.model)
                    if np.isfinite(score) and (self.best_score is None
                                               or _better(score, self.best_score, higher_is_better)):
                        self.best_score, self.log.selected_epoch = score, epoch
                        self.best_state = copy.deepcopy(self.model.state_dict())
                self.log.history.append(record)
                logger.info("epoch %d: %d steps, train loss %.4f, %.0f img/s, waited for data %.0f %%%s", epoch,
                            self.log.steps, record["train_loss"], speed["images_per_s"],
                            100 * speed["data_wait_fraction"],
                            f", validation {record['val']:.4f}" if "val" in record else "")
                self.epoch, self.order, self.done = epoch + 1, None, 0
                self._safe_point()
        return self._finish()

    def _finish(self) -> FitLog:
        log = self.log
        if self.best_state is not None:
            self.model.load_state_dict(self.best_state)
            return log
        if self.recipe.selection == "val" and self.world.is_main:  # e.g. AUC on a validation split with one class
            log.selection_fallback = "no finite validation score"
            logger.warning("no epoch had a finite validation score: keeping the last epoch instead")
        log.selected_epoch, log.selection = log.history[-1]["epoch"], "last"
        return log

    def _train_epoch(self) -> dict:
        """The rest of the epoch; restarted from the failed step with half the micro-batch when CUDA
        runs out of memory."""
        _train_mode(self.model, self.frozen, self.frozen_bn)
        if self.order is None:
            self.order = self.train_rows[torch.randperm(len(self.train_rows), generator=self.order_rng).numpy()]
            self.loss_sum = torch.zeros((), device=self.device)
        chunks = [self.order[c] for c in _training_chunks(len(self.order), self.recipe.batch_size, self.world.size)]
        steps_left = self.max_steps - (self.log.steps - self.done)
        chunks = chunks[: int(steps_left)] if np.isfinite(steps_left) else chunks
        waited, started, first = 0.0, time.perf_counter(), self.done
        while self.done < len(chunks):
            out_of_memory = False
            todo = chunks[self.done:]
            parts = [self._my_parts(rows) for rows in todo]
            with BatchFeed(self.data.gather, [rows for split in parts for _, rows in split]) as feed:
                try:
                    for rows, split in zip(todo, parts):
                        self.loss_sum += self._step(feed, split, len(rows))
                        self.log.seen.update(rows.tolist())
                        self.done += 1
                        self.log.steps += 1
                        self._safe_point()
                except torch.cuda.OutOfMemoryError:
                    if not self.data.accel.is_cuda or self.log.micro_batch <= 1:
                        raise
                    out_of_memory = True
                finally:
                    waited += feed.waited
            if out_of_memory:  # outside the handler, so the failed step's tensors are free to release
                self.optimizer.zero_grad(set_to_none=True)
                torch.cuda.empty_cache()
                self.log.micro_batch //= 2
                logger.warning("out of device memory: micro-batch halved to %d", self.log.micro_batch)
        loss_sum = distributed.all_reduce_sum(self.loss_sum.clone()) if self.world.distributed else self.loss_sum
        mean_loss = float(loss_sum) / max(self.done, 1)  # the epoch's one host sync
        wall = time.perf_counter() - started
        return {"steps": self.log.steps, "train_loss": mean_loss,
                "images_per_s": sum(map(len, chunks[first:])) / wall, "data_wait_fraction": waited / wall}

    def _my_parts(self, rows: np.ndarray) -> list[tuple[int, np.ndarray]]:
        """This rank's micro-batches of an effective batch, with their index in it."""
        parts = np.array_split(rows, _micro_count(len(rows), self.log.micro_batch, self.world.size))
        per_rank = len(parts) // self.world.size
        mine = range(self.world.rank * per_rank, (self.world.rank + 1) * per_rank)
        return [(i, parts[i]) for i in mine]

    def _step(self, feed: BatchFeed, split: list[tuple[int, np.ndarray]], effective: int) -> torch.Tensor:
        """One optimiser step over an effective batch: each micro-batch's mean loss weighted by its
        share (times the world size, which DDP's gradient average divides out again)."""
        self.optimizer.zero_grad(set_to_none=True)
        before = distributed.snapshot_batchnorm(self.batchnorm) if self.batchnorm else None
        total = torch.zeros((), device=self.device)
        for j, (index, rows) in enumerate(split):
            images, targets = feed.next()
            last = j == len(split) - 1
            sync = contextlib.nullcontext() if last or not self.world.distributed else self.net.no_sync()
            with _micro_rng(self.seed, self.epoch, self.done, index, self.device), sync:
                x, y = self.data.to_model(images, targets, augment=True)
                with self.data.accel.autocast():
                    loss = self.loss_fn(self.net(x), y) * (len(rows) / effective)
                self.scaler.scale(loss * self.world.size).backward()
            total += loss.detach().float()
        if before is not None:
            distributed.merge_batchnorm_stats(self.batchnorm, before, len(split))
        self.scaler.step(self.optimizer)
        self.scaler.update()
        return total

    # ------------------------------------------------------------------ saving and resuming

    def _safe_point(self) -> None:
        """A step boundary: save the state when it is due or a stop was asked for, then stop if asked."""
        if self.checkpointing is not None:
            wanted = bool(self.pending) or self.checkpointing.due()
            if self.world.distributed:  # rank 0 decides, so every rank takes part in gathering the state
                wanted = distributed.broadcast(wanted)
            if wanted:
                state = self._state()
                if self.world.is_main:
                    self.checkpointing.save(state)
        if self.pending:
            logger.warning("stop requested: training state saved at epoch %d, step %d", self.epoch, self.done)
            self.pending.deliver()

    def _state(self) -> dict:
        log = self.log
        return {
            "epoch": self.epoch, "done": self.done,
            "order": torch.from_numpy(np.asarray(self.order)) if self.order is not None else None,
            # the whole world's running loss (rank 0 resumes it; the others start from zero)
            "loss_sum": (distributed.all_reduce_sum(self.loss_sum.detach().clone()) if self.world.distributed
                         else self.loss_sum.detach()).cpu(),
            "model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
            "schedule": self.schedule.state_dict(), "scaler": self.scaler.state_dict(),
            "order_rng": self.order_rng.get_state(), "rng": rng_states(self.device),
            "best_score": self.best_score, "best_state": self.best_state,
            "log": {"steps": log.steps, "selected_epoch": log.selected_epoch, "micro_batch": log.micro_batch,
                    "history": log.history, "throughput": log.throughput, "resumed": log.resumed,
                    "seen": torch.tensor(sorted(log.seen), dtype=torch.int64)},
        }

    def _resume(self) -> None:
        state = self.checkpointing.load() if self.checkpointing is not None else None
        if state is None:
            return
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.schedule.load_state_dict(state["schedule"])
        self.scaler.load_state_dict(state["scaler"])
        self.order_rng.set_state(state["order_rng"])
        set_rng_states(state["rng"], self.device)
        self.epoch, self.done = state["epoch"], state["done"]
        self.order = state["order"].numpy() if state["order"] is not None else None
        self.loss_sum = state["loss_sum"].to(self.device) * (1 if self.world.is_main else 0)
        self.best_score, self.best_state = state["best_score"], state["best_state"]
        saved = state["log"]
        log = self.log
        log.steps, log.selected_epoch, log.micro_batch = saved["steps"], saved["selected_epoch"], saved["micro_batch"]
        log.history, log.throughput, log.resumed = saved["history"], saved["throughput"], saved["resumed"]
        log.seen = set(saved["seen"].tolist())
        log.resumed.append({"epoch": self.epoch, "step": self.done})
        logger.info("resumed from training state %s: epoch %d of %d, step %d of the epoch (%d steps done)",
                    self.checkpointing.path, self.epoch, self.epochs, self.done, log.steps)


def _micro_count(rows: int, micro_batch: int, world_size: int) -> int:
    """Micro-batches an effective batch is cut into: enough for ``micro_batch``, and a multiple of
    the world size (every rank takes as many), none of them empty. With one device and with N whose
    count is already a multiple of N, the micro-batches are the same: so are the numbers."""
    count = int(np.ceil(int(np.ceil(rows / micro_batch)) / world_size)) * world_size
    return min(count, rows // world_size * world_size)


@contextlib.contextmanager
def _micro_rng(seed: int, epoch: int, step: int, index: int, device: torch.device):
    """The global generators seeded for one micro-batch, and restored after it."""
    key = int(np.random.SeedSequence([seed, epoch, step, index]).generate_state(1)[0])
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(key)
        yield


def _train_mode(model: nn.Module, frozen: nn.Module | None, frozen_bn: str) -> None:
    model.train()
    if frozen is not None:
        frozen.eval()
        if frozen_bn == "train":
            for module in frozen.modules():
                if isinstance(module, nn.modules.batchnorm._BatchNorm):
                    module.train()


def _training_chunks(n: int, batch_size: int, world_size: int = 1) -> list[np.ndarray]:
    """A trailing batch of one (or of fewer rows than devices) is folded into the previous one:
    BatchNorm cannot train on it (nor a device on nothing)."""
    chunks = batches(n, batch_size)
    if len(chunks) > 1 and len(chunks[-1]) < max(2, world_size):
        chunks[-2] = np.concatenate(chunks[-2:])
        chunks.pop()
    return chunks


def _better(score: float, best: float, higher_is_better: bool) -> bool:
    """Strictly better: ties keep the earlier epoch."""
    return score > best if higher_is_better else score < best
