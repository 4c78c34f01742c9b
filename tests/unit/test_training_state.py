"""The pieces that make a training job resumable and shareable across devices: signals held
back to a step boundary, the state file (never unpickled with arbitrary code), micro-batch
partitions, and BatchNorm statistics merged as one process would have left them."""
from __future__ import annotations

import logging
import os
import pickle
import signal

import numpy as np
import pytest
import torch

from benchmark.core import interrupts
from benchmark.evaluation.distributed import _sequential
from benchmark.evaluation.protocols.trainer import _micro_count
from benchmark.evaluation.protocols.training_state import Checkpointing


def test_a_signal_inside_a_deferred_block_waits_for_deliver_and_meets_its_old_handler():
    seen = []
    old = signal.signal(signal.SIGTERM, lambda *_: seen.append("term"))
    try:
        with interrupts.deferred() as pending:
            os.kill(os.getpid(), signal.SIGTERM)
            assert pending.signals == [signal.SIGTERM] and seen == []  # held back, mid-step
            pending.deliver()
            assert seen == ["term"] and not pending
            os.kill(os.getpid(), signal.SIGTERM)  # a handler that did not raise: held back again
            assert pending.signals == [signal.SIGTERM] and seen == ["term"]
        assert seen == ["term", "term"]  # leaving the block delivers what was still held
    finally:
        signal.signal(signal.SIGTERM, old)


def test_sigterm_becomes_terminated_a_keyboard_interrupt():
    old = signal.getsignal(signal.SIGTERM)
    try:
        interrupts.handle_sigterm()
        with pytest.raises(interrupts.Terminated) as raised:
            os.kill(os.getpid(), signal.SIGTERM)
            for _ in range(1000):  # the handler runs at the next bytecode boundary
                pass
        assert isinstance(raised.value, KeyboardInterrupt)
    finally:
        signal.signal(signal.SIGTERM, old)


def test_ignored_signals_stay_ignored_inside_a_deferred_block():
    old = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        with interrupts.deferred() as pending:
            os.kill(os.getpid(), signal.SIGINT)
            assert not pending
    finally:
        signal.signal(signal.SIGINT, old)


class _Payload:
    def __reduce__(self):
        return (os.system, ("echo pwned > /dev/null",))


def test_a_state_file_with_arbitrary_code_is_refused_and_training_starts_over(tmp_path, caplog):
    path = tmp_path / "job.pt"
    with open(path, "wb") as handle:
        pickle.dump({"version": 1, "identity": {}, "evil": _Payload()}, handle)
    with caplog.at_level(logging.WARNING, logger="benchmark"):
        assert Checkpointing(path).load() is None
    assert "cannot be resumed" in caplog.text and str(path) in caplog.text


def test_a_state_from_another_set_up_is_set_aside(tmp_path, caplog):
    saved = Checkpointing(tmp_path / "job.pt", identity={"job": "a", "world_size": 1})
    saved.save({"epoch": 2, "done": 3, "model": {"w": torch.ones(2)}})
    assert Checkpointing(tmp_path / "job.pt", identity={"job": "a", "world_size": 1}).load()["epoch"] == 2
    with caplog.at_level(logging.WARNING, logger="benchmark"):
        assert Checkpointing(tmp_path / "job.pt", identity={"job": "a", "world_size": 2}).load() is None
    assert "another set-up" in caplog.text


def test_a_saved_state_is_group_readable_like_any_written_file(tmp_path):
    old = os.umask(0o022)
    try:
        Checkpointing(tmp_path / "job.pt").save({"epoch": 1, "done": 0})
    finally:
        os.umask(old)
    assert (tmp_path / "job.pt").stat().st_mode & 0o777 == 0o644


@pytest.mark.parametrize("rows, micro, world, expected", [
    (16, 8, 1, 2), (16, 8, 2, 2), (16, 4, 2, 4), (17, 8, 1, 3), (17, 8, 2, 4), (3, 8, 2, 2), (5, 1, 4, 4),
])
def test_micro_batches_are_a_multiple_of_the_world_and_never_empty(rows, micro, world, expected):
    count = _micro_count(rows, micro, world)
    assert count == expected and count % world == 0 and min(len(p) for p in np.array_split(np.arange(rows), count))


@pytest.mark.parametrize("momentum", [0.1, 0.5, None])
def test_merged_batchnorm_statistics_equal_the_sequential_updates(momentum):
    """Two ranks each apply k=3 updates from the same start; the merge equals one process applying
    all six, rank 0's first."""
    rng = np.random.default_rng(0)
    start, seen, k = torch.tensor(rng.normal(size=5)), 4, 3
    batches = [torch.tensor(rng.normal(size=5)) for _ in range(2 * k)]

    def run(value, items, count):
        for batch in items:
            count += 1
            factor = 1 / count if momentum is None else momentum
            value = (1 - factor) * value + factor * batch
        return value

    per_rank = [run(start, batches[r * k:(r + 1) * k], seen) for r in range(2)]
    merged = _sequential(per_rank, start, momentum, k, seen)
    torch.testing.assert_close(merged, run(start, batches, seen), rtol=1e-12, atol=1e-12)
