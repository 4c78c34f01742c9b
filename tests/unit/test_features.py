import numpy as np
import pytest
import torch

from baselines import builtin_checkpoints
from benchmark.catalog import resolve as checkpoints
from benchmark.core.errors import DataError
from benchmark.core.specs import InputConvention, Preprocessing
from benchmark.core.workdir import Workdir
from benchmark.data.slices import SliceSet
from benchmark.evaluation.accel import Accelerator
from benchmark.evaluation.features import cached_features, extract, feature_cache_key, sidecar_path
from benchmark.evaluation.inputs import to_model_input
from benchmark.models.load import load_backbone


@pytest.fixture(scope="module")
def random_checkpoint(tmp_path_factory):
    return checkpoints.resolve(builtin_checkpoints()[0], Workdir(tmp_path_factory.mktemp("ck")))


def slices(n=5):
    rng = np.random.default_rng(0)
    return SliceSet(rng.random((n, 3, 32, 32)).astype(np.float16), np.zeros(n, np.int64),
                    np.asarray([f"p{i}" for i in range(n)]), np.asarray([f"c{i}" for i in range(n)]), "k")


def test_random_init_is_a_reproducible_file(random_checkpoint, tmp_path):
    again = checkpoints.resolve(builtin_checkpoints()[0], Workdir(tmp_path))
    assert again.sha256 == random_checkpoint.sha256
    assert random_checkpoint.weights.suffix == ".safetensors"


def test_features_are_deterministic_and_batch_size_independent(random_checkpoint):
    model = load_backbone(random_checkpoint)
    cpu = Accelerator.create(torch.device("cpu"))
    a = extract(model, slices(), random_checkpoint, cpu, batch_size=2)
    b = extract(model, slices(), random_checkpoint, cpu, batch_size=5)
    assert a.shape == (5, model.num_features)
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)


def test_cache_key_covers_checkpoint_split_task_preprocessing_and_precision(random_checkpoint):
    prep = Preprocessing(size=32)
    base = feature_cache_key(random_checkpoint, "t", "1", "s" * 64, prep)
    assert base == feature_cache_key(random_checkpoint, "t", "1", "s" * 64, prep)
    others = {
        feature_cache_key(random_checkpoint.model_copy(update={"sha256": "0" * 64}), "t", "1", "s" * 64, prep),
        feature_cache_key(random_checkpoint.model_copy(update={"input": InputConvention(mean=(0.5,) * 3)}),
                          "t", "1", "s" * 64, prep),
        feature_cache_key(random_checkpoint, "t", "2", "s" * 64, prep),
        feature_cache_key(random_checkpoint, "t", "1", "x" * 64, prep),
        feature_cache_key(random_checkpoint, "t", "1", "s" * 64, Preprocessing(size=64)),
        feature_cache_key(random_checkpoint, "t", "1", "s" * 64, prep, precision="bf16"),
    }
    assert base not in others and len(others) == 6


def test_cache_is_computed_once_and_checks_row_order(tmp_path):
    calls = []
    s = slices()
    compute = lambda: calls.append(1) or (np.ones((5, 4), np.float32), {"format": "timm"})  # noqa: E731
    cached_features(tmp_path / "f.npy", s, compute)
    features, record = cached_features(tmp_path / "f.npy", s, compute)
    assert len(calls) == 1 and features.shape == (5, 4) and record == {"format": "timm"}
    assert isinstance(features, np.memmap) and not features.flags.writeable
    shuffled = SliceSet(s.images, s.labels, s.patient_ids, s.case_ids[::-1], "k")
    with pytest.raises(DataError, match="f.npy"):
        cached_features(tmp_path / "f.npy", shuffled, compute)


def test_extraction_streams_into_the_cache_file_and_a_retry_restarts_it(random_checkpoint, tmp_path):
    """The rows go straight into the .npy through its memory map; a second attempt (CUDA OOM at a
    smaller batch) rewrites the file from the start, so the cache equals an in-memory extraction."""
    model, cpu, s = load_backbone(random_checkpoint), Accelerator.create(torch.device("cpu")), slices()
    expected = extract(model, s, random_checkpoint, cpu, batch_size=2)

    def compute(sink):
        sink.rows(7)[:] = np.nan  # a failed first attempt, of another width even
        extract(model, s, random_checkpoint, cpu, batch_size=2, into=sink)
        return {"format": "timm"}

    features, record = cached_features(tmp_path / "f.npy", s, compute)
    np.testing.assert_array_equal(features, expected)
    assert record == {"format": "timm"} and sidecar_path(tmp_path / "f.npy").exists()


def test_a_failed_extraction_leaves_no_file_that_is_trusted_later(tmp_path):
    s = slices()

    def broken(sink):
        sink.rows(4)[:2] = 1.0
        raise RuntimeError("killed mid-extraction")

    with pytest.raises(RuntimeError):
        cached_features(tmp_path / "f.npy", s, broken)
    with pytest.raises(DataError, match="non-finite"):
        cached_features(tmp_path / "f.npy", s, lambda: (np.full((5, 4), np.nan, np.float32), {}))
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.endswith(".lock")) == []
    features, _ = cached_features(tmp_path / "f.npy", s, lambda: (np.ones((5, 4), np.float32), {}))
    assert features.sum() == 20


def test_one_channel_checkpoints_get_the_mean_of_the_window_channels(random_checkpoint):
    one = random_checkpoint.model_copy(update={"input": InputConvention(channels=1, mean=(0.5,), std=(0.25,))})
    x = to_model_input(np.full((2, 3, 4, 4), 0.75, np.float16), one)
    assert x.shape == (2, 1, 4, 4)
    torch.testing.assert_close(x, torch.ones(2, 1, 4, 4))
