"""The training loop's feed and gradient accumulation: batches gathered in the background in the
requested order, threads that never outlive a job, accumulated gradients equal to a full batch's."""
import logging
import threading

import numpy as np
import pytest
import torch
from torch import nn

from benchmark.core.specs import INPUT_CONVENTIONS, Augmentation, TrainingRecipe
from benchmark.evaluation.accel import Accelerator
from benchmark.evaluation.inputs import InputPipeline
from benchmark.evaluation.protocols.feed import BatchFeed, SliceBatches
from benchmark.evaluation.protocols.trainer import fit

N, SIZE = 32, 8
CPU = Accelerator(torch.device("cpu"))
NO_AUGMENTATION = Augmentation(p=0.0)


def slices(tmp_path, accel=CPU, augment=NO_AUGMENTATION) -> SliceBatches:
    """A raw int16 single-channel cache on disk, as the slice cache now stores CT."""
    images = np.lib.format.open_memmap(tmp_path / "images.npy", mode="w+", dtype=np.int16, shape=(N, 1, SIZE, SIZE))
    images[:] = np.random.default_rng(0).integers(-1024, 2000, size=images.shape)
    labels = np.arange(N) % 2
    return SliceBatches(images, labels, InputPipeline(INPUT_CONVENTIONS["minmax_grey3"], "ct", mapped=False),
                        accel, augmentation=augment)


def small_model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 2))


def feed_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "ctbench-batch-feed"]


def test_gather_keeps_the_stored_dtype_and_the_requested_order(tmp_path):
    data = slices(tmp_path)
    rows = np.array([5, 1, 30, 3])
    images, labels = data.gather(rows)
    assert images.dtype == torch.int16 and images.shape == (4, 1, SIZE, SIZE)
    assert np.array_equal(images.numpy(), data.images[rows]) and labels.tolist() == [1, 1, 0, 1]
    x, y = data.to_model(images, labels)
    assert x.dtype == torch.float32 and x.shape == (4, 3, SIZE, SIZE) and y.dtype == torch.int64


def test_the_feed_yields_in_order_and_hands_over_a_failure():
    with BatchFeed(lambda rows: rows * 2, [np.array([i]) for i in range(5)]) as feed:
        assert [int(feed.next()[0]) for _ in range(5)] == [0, 2, 4, 6, 8]
        with pytest.raises(StopIteration):
            feed.next()

    def broken(rows):
        raise OSError("disk gone")

    with pytest.raises(OSError, match="disk gone"), BatchFeed(broken, [np.array([0])]) as feed:
        feed.next()
    assert not feed_threads()


def test_a_consumer_that_stops_early_leaves_no_thread():
    with BatchFeed(lambda rows: rows, [np.array([i]) for i in range(100)], depth=2) as feed:
        feed.next()
    assert not feed_threads()


def test_a_job_failing_mid_epoch_leaves_no_thread(tmp_path):
    calls = []

    def failing_loss(logits, y):
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("boom")
        return nn.functional.cross_entropy(logits, y)

    recipe = TrainingRecipe(optimizer="sgd", lr=0.1, epochs=1, batch_size=4, selection="last")
    with pytest.raises(RuntimeError, match="boom"):
        fit(small_model(), failing_loss, slices(tmp_path), np.arange(N), recipe, 0, None)
    assert not feed_threads()


@pytest.mark.parametrize("optimizer", ["sgd", "lars"])
def test_accumulating_four_micro_batches_of_8_equals_one_batch_of_32(tmp_path, optimizer):
    recipe = TrainingRecipe(optimizer=optimizer, lr=0.5, weight_decay=0.0, epochs=1, batch_size=32,
                            selection="last")
    whole, accumulated = small_model(), small_model()
    log_whole = fit(whole, nn.CrossEntropyLoss(), slices(tmp_path), np.arange(N), recipe, 0, None)
    capped = Accelerator(torch.device("cpu"), micro_batch=8)
    log = fit(accumulated, nn.CrossEntropyLoss(), slices(tmp_path, capped), np.arange(N), recipe, 0, None)
    assert (log_whole.micro_batch, log_whole.accumulation_steps) == (32, 1)
    assert (log.micro_batch, log.accumulation_steps, log.steps) == (8, 4, 1)
    assert log.as_dict()["micro_batch"] == 8 and log.as_dict()["accumulation_steps"] == 4
    for a, b in zip(whole.parameters(), accumulated.parameters()):
        assert torch.allclose(a, b, atol=1e-6)
    assert not torch.equal(next(whole.parameters()), next(small_model().parameters()))  # it did step
    assert log.history[0]["train_loss"] == pytest.approx(log_whole.history[0]["train_loss"], rel=1e-5)


def test_each_epoch_records_its_throughput_and_data_wait(tmp_path):
    recipe = TrainingRecipe(optimizer="sgd", lr=0.1, epochs=2, batch_size=8, selection="last")
    log = fit(small_model(), nn.CrossEntropyLoss(), slices(tmp_path), np.arange(N), recipe, 0, None)
    assert [speed["epoch"] for speed in log.throughput] == [1, 2]
    for speed, record in zip(log.throughput, log.history):
        assert speed["images_per_s"] > 0 and 0 <= speed["data_wait_fraction"] <= 1
        assert np.isfinite(record["train_loss"]) and "images_per_s" not in record  # timings stay out of the record
    assert "throughput" not in log.as_dict()
    assert log.as_dict()["selection_fallback"] is None and log.steps == 8


def test_a_cpu_run_is_bit_reproducible_with_augmentations_on(tmp_path):
    recipe = TrainingRecipe(optimizer="adamw", epochs=2, batch_size=8, selection="last")

    def run():
        model = small_model()
        torch.manual_seed(7)
        fit(model, nn.CrossEntropyLoss(), slices(tmp_path, augment=Augmentation(p=0.5)), np.arange(N), recipe, 0,
            None)
        return [p.detach().clone() for p in model.parameters()]

    assert all(torch.equal(a, b) for a, b in zip(run(), run()))


def test_no_finite_validation_score_falls_back_to_the_last_epoch_visibly(tmp_path, caplog):
    recipe = TrainingRecipe(optimizer="sgd", lr=0.1, epochs=2, batch_size=8, selection="val")
    with caplog.at_level(logging.WARNING):
        log = fit(small_model(), nn.CrossEntropyLoss(), slices(tmp_path), np.arange(N), recipe, 0,
                  lambda model: float("nan"))
    assert log.as_dict()["selection_fallback"] == "no finite validation score"
    assert (log.selection, log.selected_epoch) == ("last", 2)
    assert "finite validation score" in caplog.text
