"""Stopping requests from outside (Ctrl-C, SIGTERM, a scheduler's preemption signal), delivered
only where stopping is safe.

SIGTERM is what SLURM sends before it kills a job (preemption, a time limit) and what
``kill`` sends by default: ctbench turns it into ``Terminated``, a ``KeyboardInterrupt``, so
it takes every path Ctrl-C takes (workers stopped, claims released, partial writes swept)
and ends with its own exit code.

A training loop cannot stop halfway through an optimiser step (some micro-batches' gradients
and BatchNorm updates applied, the step not): ``deferred`` holds those signals back inside a
block and records them; the loop saves its state at the next step boundary, then ``deliver``
raises them through the handlers they would have met.
"""
from __future__ import annotations

import os
import signal
import threading
from contextlib import contextmanager
from typing import Iterator


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised in the main thread."""


def _raise_terminated(signum, frame) -> None:
    raise Terminated()


def handle_sigterm() -> None:
    """From now on SIGTERM raises ``Terminated`` (main thread only, where handlers can be set)."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _raise_terminated)


def _preemption_signal() -> signal.Signals | None:
    """submitit's checkpoint-and-requeue signal (USR2 unless ``SUBMITIT_PREEMPT_SIGNAL`` names another)."""
    return getattr(signal, "SIG" + os.environ.get("SUBMITIT_PREEMPT_SIGNAL", "USR2").upper().removeprefix("SIG"), None)


class Pending:
    """The signals that arrived inside a ``deferred`` block, in order."""

    def __init__(self, handlers: dict):
        self._handlers = handlers  # signal -> the handler it had before the block
        self.signals: list[int] = []

    def __bool__(self) -> bool:
        return bool(self.signals)

    def record(self, signum, frame) -> None:
        self.signals.append(signum)

    def hold(self) -> None:
        for signum in self._handlers:
            signal.signal(signum, self.record)

    def restore(self) -> None:
        for signum, handler in self._handlers.items():
            signal.signal(signum, handler)

    def deliver(self) -> None:
        """Raise what was held back through the handlers it would have met; a handler that does not
        raise (one that only logs) lets the block go on, holding signals back again."""
        self.restore()
        held, self.signals = self.signals, []
        for signum in held:
            signal.raise_signal(signum)
        self.hold()


@contextmanager
def deferred() -> Iterator[Pending]:
    """Hold back SIGINT, SIGTERM and a scheduler's preemption signal inside the block (main thread
    only: elsewhere nothing can be held back, and nothing is recorded). Ignored signals stay ignored."""
    if threading.current_thread() is not threading.main_thread():
        yield Pending({})
        return
    wanted = [signal.SIGINT, signal.SIGTERM]
    preempt = _preemption_signal()
    if preempt is not None and callable(signal.getsignal(preempt)):  # only where submitit installed its handler
        wanted.append(preempt)
    handlers = {s: signal.getsignal(s) for s in wanted if signal.getsignal(s) not in (signal.SIG_IGN, None)}
    pending = Pending(handlers)
    pending.hold()
    try:
        yield pending
    finally:
        held, pending.signals = pending.signals, []
        pending.restore()
        for signum in held:  # the block ended some other way (an error): deliver what was held back
            signal.raise_signal(signum)
