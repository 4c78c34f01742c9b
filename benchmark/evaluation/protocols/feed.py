"""Feeding a training or prediction loop (``predict``): cached rows to model inputs on the device.

A background thread gathers rows from the memory-mapped cache in their stored dtype (into
pinned memory on CUDA) while the device runs the previous step; the main thread copies them
over, maps them (``pipeline.unit``), augments and standardizes them on the device. Random
draws stay in the main thread, so a CPU run stays bit-reproducible.
"""
from __future__ import annotations

import queue
import threading
import time
from dataclasses import dataclass, field
from typing import Callable, Iterable

import numpy as np
import torch
from torch import nn

from benchmark.core.specs import Augmentation
from benchmark.evaluation.accel import Accelerator, batches
from benchmark.evaluation.inputs import InputPipeline
from benchmark.evaluation.protocols.augment import augment_batch, augmentation

Batch = tuple[torch.Tensor, torch.Tensor]
FEED_DEPTH = 2  # batches gathered ahead: one being copied, one ready


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
