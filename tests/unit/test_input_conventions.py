"""Each checkpoint sees its own input convention: the study's min-max grey, ImageNet's statistics."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from baselines import builtin_checkpoints
from benchmark.core.hashing import canonical_hash
from benchmark.core.specs import INPUT_CONVENTIONS, CheckpointSpec, InputConvention, Preprocessing, Window
from benchmark.data.slices import cache_stage
from benchmark.data.transforms import slice_transform
from benchmark.evaluation.features import feature_cache_key
from benchmark.evaluation.inputs import InputPipeline
from benchmark.execution.job_runner import convention_for
from benchmark.models.formats import CHECKPOINT_FORMATS
from benchmark.results.job import Job
from leaderboard.variants import as_entry, variant_suffix

STUDY = INPUT_CONVENTIONS["minmax_grey3"]
IMAGENET = INPUT_CONVENTIONS["imagenet_rgb"]
LIVER = [Window(center=60, width=200), Window(center=40, width=400), Window(center=100, width=300)]


def hu_slice(size=48, seed=0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (rng.normal(0, 300, (size, size)) + np.linspace(-1000, 1500, size)[None]).astype(np.float32)


def test_study_convention_resizes_bilinear_then_min_maxes_the_slice_into_three_equal_channels():
    prep = Preprocessing(windows=LIVER, channels=3, size=16)
    hu = hu_slice()
    cached = slice_transform(prep, STUDY, "ct")(hu)
    assert cached.shape == (1, 16, 16)  # raw HU, the source's one channel: any convention can map it later
    expected_resized = F.interpolate(torch.from_numpy(hu)[None, None], size=(16, 16), mode="bilinear",
                                     align_corners=False)[0, 0]
    np.testing.assert_allclose(cached[0], expected_resized.numpy(), rtol=1e-5, atol=1e-3)
    x = InputPipeline(STUDY, "ct", tuple(LIVER), mapped=False)(cached[None])
    low, high = expected_resized.min(), expected_resized.max()
    expected = ((expected_resized - low) / (high - low)).numpy()
    assert x.shape == (1, 3, 16, 16)
    for channel in range(3):  # grey x3, no clipping to a window, no mean/std
        np.testing.assert_allclose(x[0, channel].numpy(), expected, atol=1e-5)
    assert float(x.min()) == 0.0 and float(x.max()) == pytest.approx(1.0)


def test_min_max_before_resize_would_differ_so_the_order_is_pinned():
    prep = Preprocessing(size=16)
    hu = hu_slice()
    study = InputPipeline(STUDY, "ct", mapped=False)(slice_transform(prep, STUDY, "ct")(hu)[None])
    mapped_first = STUDY.model_copy(update={"resize_first": False})
    other = InputPipeline(mapped_first, "ct", mapped=True)(slice_transform(prep, mapped_first, "ct")(hu)[None])
    assert not torch.allclose(study, other, atol=1e-3)


def test_imagenet_convention_windows_then_standardises_with_imagenet_statistics():
    prep = Preprocessing(windows=LIVER, channels=3, size=16)
    unit = slice_transform(prep, IMAGENET, "ct")(hu_slice())
    assert unit.shape == (3, 16, 16) and 0 <= unit.min() and unit.max() <= 1  # three windows, area-resized
    x = InputPipeline(IMAGENET, "ct", tuple(LIVER), mapped=True)(unit[None])
    mean = torch.tensor(IMAGENET.mean).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET.std).view(1, 3, 1, 1)
    torch.testing.assert_close(x, (torch.from_numpy(unit)[None] - mean) / std)


def test_formats_and_baselines_declare_their_convention():
    assert CHECKPOINT_FORMATS["study"].convention == STUDY
    for name in ("timm", "torchvision", "safetensors"):
        assert CHECKPOINT_FORMATS[name].convention == IMAGENET
    assert CHECKPOINT_FORMATS["radimagenet"].convention.std == (1.0, 1.0, 1.0)
    specs = {spec.name: spec for spec in builtin_checkpoints()}
    assert specs["radnet"].input == STUDY and specs["imagenet-simclr"].input == STUDY
    assert specs["imagenet"].input == IMAGENET


def test_a_forced_convention_changes_the_feature_cache_key_and_keeps_the_networks_channels():
    spec = CheckpointSpec(name="mine", arch="resnet50", sha256="a" * 64, pretraining_domain="ct",
                          input=STUDY.model_copy(update={"channels": 1}))
    forced = convention_for(spec, "imagenet_rgb")
    assert forced.name == "imagenet_rgb" and forced.channels == 1 and convention_for(spec, None) == spec.input
    prep = Preprocessing()
    native_key = feature_cache_key(spec, "t", "1", "s" * 64, prep)
    forced_key = feature_cache_key(spec.model_copy(update={"input": forced}), "t", "1", "s" * 64, prep)
    assert native_key != forced_key


def test_resize_first_conventions_share_one_raw_cache_and_map_first_ones_are_keyed_by_their_mapping():
    assert cache_stage(STUDY, "ct") == cache_stage(STUDY.model_copy(update={"mean": (0.5,) * 3, "std": (0.2,) * 3,
                                                                           "name": "other"}), "ct")
    windows = INPUT_CONVENTIONS["hu_windows"]
    assert cache_stage(windows, "ct", LIVER) != cache_stage(IMAGENET, "ct", LIVER)
    assert cache_stage(windows, "mri", LIVER) == cache_stage(IMAGENET, "mri", LIVER)  # HU windows mean nothing on MRI
    assert cache_stage(windows, "ct", windows.windows) == cache_stage(IMAGENET, "ct", windows.windows)  # one entry


def test_minmax_of_a_constant_slice_is_zero_not_nan():
    x = InputPipeline(STUDY, "ct", mapped=False)(np.full((1, 1, 4, 4), 7.0, np.float32))
    assert torch.equal(x, torch.zeros(1, 3, 4, 4))


def test_convention_validation_refuses_half_statistics_and_missing_windows():
    with pytest.raises(ValueError, match="together"):
        InputConvention(mean=None)
    with pytest.raises(ValueError, match="needs windows"):
        InputConvention(intensity="windows")


def test_a_default_job_keeps_its_id_and_a_variant_gets_its_own():
    job = Job("random", "a" * 64, "t1", "1", "linear", "1", 0.1, 42, "demo")
    legacy = {k: v for k, v in job.as_dict().items() if k != "job_id"}
    assert set(legacy) == {"checkpoint", "checkpoint_sha256", "task", "task_version", "protocol", "protocol_version",
                           "scale", "seed", "profile", "split_version"}
    assert job.job_id.endswith(canonical_hash(legacy)[:12])
    forced = Job("random", "a" * 64, "t1", "1", "linear", "1", 0.1, 42, "demo", input_convention="minmax_grey3")
    assert forced.job_id != job.job_id and "--in-minmax_grey3--" in forced.job_id
    assert Job.from_dict(forced.as_dict()) == forced
    assert variant_suffix(job) == "" and variant_suffix(forced) == "input-minmax-grey3"


def test_a_forced_row_is_its_own_leaderboard_entry_without_a_baseline_role():
    from benchmark.results.schema import Result

    job = Job("imagenet", "a" * 64, "t1", "1", "linear", "1", 1.0, 42, "demo", input_convention="minmax_grey3")
    result = Result.build({"job": job.as_dict(), "metrics": {"auc": 0.7},
                           "checkpoint": {"name": "imagenet", "pretraining_domain": "natural",
                                          "baseline_role": "natural", "description": "timm weights"},
                           "task": {"name": "t1", "version": "1", "domain": "ct"}})
    entry = as_entry(result)
    assert entry.job.checkpoint == entry.checkpoint.name == "imagenet+input-minmax-grey3"
    assert entry.checkpoint.baseline_role is None and "input-minmax-grey3" in entry.checkpoint["description"]
