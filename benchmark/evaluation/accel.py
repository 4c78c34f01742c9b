"""The GPU fast path in one place: precision, memory format, host-to-device copies, compile.

On a CPU everything here is a no-op and the numbers are plain fp32, which is what makes a
CPU rerun reproduce them bit for bit. On CUDA: bf16 autocast where the card supports it
(fp16 with a gradient scaler otherwise), channels_last, pinned memory with non-blocking
copies, ``cudnn.benchmark``, and ``torch.compile`` when asked for.
"""
from __future__ import annotations

import contextlib
import random
from dataclasses import dataclass
from typing import Callable, TypeVar

import numpy as np
import torch
from torch import nn

from benchmark.core.errors import CTBenchError
from benchmark.core.specs import Precision

T = TypeVar("T")

_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


@dataclass(frozen=True)
class Accelerator:
    device: torch.device
    precision: str = "fp32"  # what autocast uses: fp32 (off), bf16 or fp16
    channels_last: bool = False
    compile: bool = False
    micro_batch: int | None = None  # caps a training step's micro-batch (gradient accumulation fills the rest)

    @classmethod
    def create(cls, device: torch.device, precision: Precision = "auto", compile: bool = False) -> "Accelerator":
        if device.type != "cuda":
            return cls(device, "fp32" if precision == "auto" else precision, channels_last=False, compile=compile)
        torch.backends.cudnn.benchmark = True  # fixed input sizes: let cuDNN pick its fastest kernels
        if precision == "auto":
            precision = "bf16" if torch.cuda.is_bf16_supported() else "fp16"
        return cls(device, precision, channels_last=True, compile=compile)

    @property
    def is_cuda(self) -> bool:
        return self.device.type == "cuda"

    def autocast(self):
        if self.precision == "fp32":
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=_DTYPES[self.precision])

    def grad_scaler(self) -> torch.amp.GradScaler:
        """Only fp16 needs loss scaling; bf16 has fp32's exponent range."""
        return torch.amp.GradScaler(self.device.type, enabled=self.precision == "fp16")

    def prepare(self, model: nn.Module) -> nn.Module:
        model = model.to(self.device)
        if self.channels_last:
            model = model.to(memory_format=torch.channels_last)
        return torch.compile(model) if self.compile else model

    def pinned(self, x: torch.Tensor) -> torch.Tensor:
        """Page-locked on CUDA, so the copy to the device can run without blocking the host."""
        return x.pin_memory() if self.is_cuda and not x.is_pinned() else x

    def to_device(self, x: torch.Tensor) -> torch.Tensor:
        if not self.is_cuda:
            return x
        return self.memory_format(self.pinned(x).to(self.device, non_blocking=True))

    def memory_format(self, x: torch.Tensor) -> torch.Tensor:
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last and x.ndim == 4 else x


def largest_batch(run: Callable[[int], T], start: int, accel: Accelerator, ceiling: int = 4096) -> T:
    """Run with the largest batch that fits: on CUDA start high and halve on out-of-memory.

    A CPU has no such wall, and a fixed batch keeps its numbers reproducible.
    """
    if not accel.is_cuda:
        return run(start)
    batch = ceiling
    while True:
        try:
            return run(batch)
        except torch.cuda.OutOfMemoryError:
            torch.cuda.empty_cache()
            if batch <= 1:
                raise
            batch //= 2


def batches(n: int, batch_size: int) -> list[np.ndarray]:
    return [np.arange(s, min(s + batch_size, n)) for s in range(0, n, batch_size)]


@contextlib.contextmanager
def cpu_threads(count: int | None):
    """Pin torch's and the BLAS libraries' thread pools for a block of jobs, then restore them.

    A CPU job's floating-point sums depend on how many threads split them, so a fixed count
    makes its numbers independent of the machine's cores and of how many workers share them.
    """
    if count is None:
        yield
        return
    from threadpoolctl import threadpool_limits

    before = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        with threadpool_limits(limits=count):
            yield
    finally:
        torch.set_num_threads(before)


def seed_everything(seed: int) -> None:
    """Python, numpy and torch from one seed: a job's numbers must not depend on what ran before it."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def pick_device(choice: str) -> torch.device:
    if choice == "cuda" and not torch.cuda.is_available():
        raise CTBenchError("--device cuda was given, but no CUDA device is visible")
    if choice == "auto":
        choice = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(choice)
