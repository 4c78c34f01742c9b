"""Several devices for one job (DDP), on CPU with gloo: two processes train a finetune job
together and give the single-process run's numbers at the same effective batch and micro-batch."""
from __future__ import annotations

import numpy as np

from tests.cli_helpers import grid_args, results, run_cli

REL_TOL = 1e-4


def _run(workdir, phantom, *extra):
    run_cli(*grid_args(workdir, phantom, protocols="finetune,linear", seeds="42"), "--micro-batch", "8", *extra)
    return {r["protocol"]["name"]: r for r in results(workdir).values()}


def test_two_gloo_processes_train_like_one_at_the_same_effective_batch(tiny_phantom, tmp_path):
    """Loss curve within 1e-4 relative, the same selected epoch and test metrics within float
    tolerance; the result records the world size and each rank's device. The linear job (no
    training) runs on rank 0 alone and records no world."""
    single = _run(tmp_path / "one", tiny_phantom)
    shared = _run(tmp_path / "two", tiny_phantom, "--devices-per-job", "2")

    one, two = single["finetune"]["hyperparameters"], shared["finetune"]["hyperparameters"]
    assert one["micro_batch"] == two["micro_batch"] == 8
    assert one["accumulation_steps"] == 2 * two["accumulation_steps"]  # per device: the batch is shared
    curve_one = np.array([epoch["train_loss"] for epoch in one["history"]])
    curve_two = np.array([epoch["train_loss"] for epoch in two["history"]])
    assert len(curve_one) == len(curve_two) > 1
    np.testing.assert_allclose(curve_two, curve_one, rtol=REL_TOL)
    assert [e.get("val") for e in one["history"]] == [e.get("val") for e in two["history"]] or np.allclose(
        [e.get("val", 0) for e in one["history"]], [e.get("val", 0) for e in two["history"]], rtol=1e-3)
    for name, value in single["finetune"]["metrics"].items():
        assert abs(shared["finetune"]["metrics"][name] - value) <= 1e-3, name

    world = shared["finetune"]["provenance"]["distributed"]
    assert world["world_size"] == 2 and world["backend"] == "gloo" and world["devices"] == ["cpu", "cpu"]
    assert "distributed" not in single["finetune"]["provenance"]
    assert "distributed" not in shared["linear"]["provenance"]
    assert shared["linear"]["metrics"] == single["linear"]["metrics"]
