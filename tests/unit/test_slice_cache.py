"""The slice cache is compact (source dtypes, identical channels once) and built by streaming."""
import json

import numpy as np
import pytest
import torch

from benchmark.core.errors import DataError
from benchmark.core.specs import INPUT_CONVENTIONS, InputConvention, Preprocessing, TaskSpec, Window
from benchmark.data.slices import (
    CACHE_VERSION,
    StreamedArray,
    cache_stage,
    load_slices,
    read_cache,
    slice_cache_key,
    value_dtype,
)
from benchmark.data.task import Case, Task
from benchmark.data.transforms import mask_transform, slice_transform
from benchmark.evaluation.inputs import InputPipeline

STUDY = INPUT_CONVENTIONS["minmax_grey3"]
IMAGENET = INPUT_CONVENTIONS["imagenet_rgb"]
HU_WINDOWS = INPUT_CONVENTIONS["hu_windows"]
SOFT = Window(center=40, width=400)
LIVER = [Window(center=60, width=200), SOFT, Window(center=100, width=300)]


class Slices(Task):
    """Yields the given images as cases; ``fail_at``: the case index that raises DataError instead."""

    def __init__(self, images, kind="classification", fail_at=None, domain="ct", prep=None):
        metric = "dice_mean" if kind == "segmentation" else "auc"
        self.spec = TaskSpec(name="slices", version="1", domain=domain, kind=kind, class_names=["a", "b"],
                             metrics=[metric], main_metric=metric, preprocessing=prep or Preprocessing(size=16))
        self.images, self.fail_at = list(images), fail_at

    def cases(self, root):
        for i, image in enumerate(self.images):
            if i == self.fail_at:
                raise DataError(f"case {i} is broken", root)
            label = (image > np.median(image)).astype(np.uint8) if self.spec.kind == "segmentation" else i % 2
            yield Case(f"c{i}", f"p{i % 3}", image, label, {"split": ""})


def hu(seed=0, size=32, fractional=False) -> np.ndarray:
    rng = np.random.default_rng(seed)
    values = rng.normal(0, 300, (size, size)) + np.linspace(-1000, 1500, size)[None]
    return (values if fractional else np.rint(values)).astype(np.float32)


def grey8(seed=0, size=32) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (size, size)).astype(np.float32)  # as PNG readers give


def build(tmp_path, images, convention=None, prep=None, **task_args):
    task = Slices(images, prep=prep, **task_args)
    prep = prep or task.spec.preprocessing
    return load_slices(task, tmp_path, prep, tmp_path / "cache", "f" * 64, convention)


@pytest.mark.parametrize("images, dtype", [
    ([grey8(0), grey8(1)], np.uint8),
    ([hu(0), hu(1)], np.int16),
    ([hu(0, fractional=True), hu(1, fractional=True)], np.float16),
    ([hu(0) * 40], np.float32),  # beyond float16's range
])
def test_raw_values_keep_the_sources_own_type_and_channels(tmp_path, images, dtype):
    slices = build(tmp_path, images, STUDY)
    assert not slices.mapped and isinstance(slices.images, np.memmap)
    assert slices.images.dtype == dtype and slices.images.shape == (len(images), 1, 16, 16)
    for i, image in enumerate(images):  # resized, then rounded to the source's unit where it is integral
        expected = slice_transform(Preprocessing(size=16), STUDY, "ct")(image)
        atol = 0.5 if dtype in (np.uint8, np.int16) else float(np.abs(expected).max()) * 2 ** -10
        np.testing.assert_allclose(slices.images[i].astype(np.float32), expected, rtol=0, atol=atol)


def test_value_dtype_looks_at_the_source_and_the_resized_range():
    assert value_dtype(grey8(), grey8()) == np.uint8
    assert value_dtype(grey8(), grey8() - 3) == np.int16  # a bicubic overshoot below 0
    assert value_dtype(hu(), hu() + 0.25) == np.int16  # resized values are fractional, the source is not
    assert value_dtype(hu(fractional=True), hu()) == np.float16
    assert value_dtype(np.full((4, 4), 7e4, np.float32), np.full((4, 4), 7e4, np.float32)) == np.float32


@pytest.mark.parametrize("later, widened", [(hu(5), np.int16), (hu(5, fractional=True), np.float16),
                                            (hu(5) * 40, np.float32)])
def test_a_later_slice_that_does_not_fit_widens_what_was_written(tmp_path, monkeypatch, later, widened):
    import benchmark.data.slices as slices_module

    monkeypatch.setattr(slices_module, "WIDEN_CHUNK_BYTES", 600)  # several chunks of 2 rows
    first = [grey8(seed) for seed in range(5)]
    slices = build(tmp_path, [*first, later, grey8(9)], STUDY)
    assert slices.images.dtype == widened
    plain = build(tmp_path / "plain", first, STUDY)
    assert plain.images.dtype == np.uint8
    np.testing.assert_array_equal(slices.images[:5].astype(np.float32), plain.images.astype(np.float32))
    expected = slice_transform(Preprocessing(size=16), STUDY, "ct")(later)
    atol = 0.5 if widened == np.int16 else float(np.abs(expected).max()) * 2 ** -10
    np.testing.assert_allclose(slices.images[5].astype(np.float32), expected, rtol=0, atol=atol)


def test_int16_then_a_fractional_slice_widens_to_float32_which_holds_both(tmp_path):
    slices = build(tmp_path, [hu(0), hu(1, fractional=True)], STUDY)
    assert slices.images.dtype == np.float32
    assert np.array_equal(slices.images[0], np.rint(slices.images[0]))


def old_way(image, prep, convention, domain="ct"):
    """Version 1 of the cache: the convention's channels, float16."""
    return slice_transform(prep, convention, domain)(image).astype(np.float16)


@pytest.mark.parametrize("convention, windows, image, planes", [
    (STUDY, (), hu(3), 1),                                           # raw grey: one channel
    (IMAGENET, [SOFT], hu(3), 1),                                    # one task window, three channels
    (IMAGENET, LIVER, hu(3), 3),                                     # three windows: three planes
    (HU_WINDOWS, [SOFT], hu(3), 3),
    (IMAGENET.model_copy(update={"channels": 1}), LIVER, hu(3), 1),  # averaged down: stored reduced
    (IMAGENET, (), grey8(3), 1),                                     # min-max of a grey source
    (InputConvention(intensity="minmax", mean=None, std=None), (), np.stack([grey8(i) for i in range(3)]), 3),
])
def test_identical_channels_are_stored_once_and_the_pipeline_expands_them_as_before(
        tmp_path, convention, windows, image, planes):
    prep = Preprocessing(windows=list(windows), channels=3, size=16)
    mirrored = np.ascontiguousarray(np.flip(image, -1))
    slices = build(tmp_path, [image, mirrored], convention, prep=prep)
    assert slices.images.shape[1] == planes
    assert slices.images.dtype == (np.float16 if slices.mapped else np.int16)
    pipeline = InputPipeline(convention, "ct", tuple(prep.windows), slices.mapped)
    old = np.stack([old_way(image, prep, convention), old_way(mirrored, prep, convention)])
    expected = pipeline(old)
    got = pipeline(slices.images[:])
    assert got.dtype == torch.float32 and got.shape == expected.shape == (2, convention.channels, 16, 16)
    scale = 1.0 if convention.mean is None else 1 / min(convention.std)
    torch.testing.assert_close(got, expected, rtol=0, atol=2 ** -10 * scale)


@pytest.mark.parametrize("dtype", [torch.uint8, torch.int16, torch.float16, torch.float32])
def test_unit_accepts_every_stored_dtype(dtype):
    raw = torch.arange(2 * 1 * 4 * 4).view(2, 1, 4, 4).to(dtype)
    unit = InputPipeline(STUDY, "ct", mapped=False).unit(raw)
    assert unit.dtype == torch.float32 and unit.shape == (2, 3, 4, 4)
    assert float(unit.amin()) == 0.0 and float(unit.amax()) == 1.0
    mapped = InputPipeline(IMAGENET, "ct", mapped=True).unit(torch.full((2, 1, 4, 4), 0.5, dtype=torch.float16))
    assert mapped.shape == (2, 3, 4, 4) and bool((mapped == 0.5).all())


def test_masks_are_streamed_and_read_back_memory_mapped(tmp_path):
    images = [hu(seed) for seed in range(4)]
    slices = build(tmp_path, images, IMAGENET, prep=Preprocessing(windows=[SOFT], size=16), kind="segmentation")
    assert isinstance(slices.labels, np.memmap) and slices.labels.dtype == np.uint8
    assert slices.labels.shape == (4, 16, 16)
    for i, image in enumerate(images):
        expected = mask_transform(Preprocessing(size=16))((image > np.median(image)).astype(np.uint8))
        np.testing.assert_array_equal(slices.labels[i], expected)
    assert slices.case_ids.tolist() == ["c0", "c1", "c2", "c3"] and slices.patient_ids.tolist()[:2] == ["p0", "p1"]


def test_class_labels_and_ids_are_plain_arrays(tmp_path):
    slices = build(tmp_path, [hu(0), hu(1), hu(2)], STUDY)
    assert not isinstance(slices.labels, np.memmap) and slices.labels.dtype == np.int64
    assert slices.labels.tolist() == [0, 1, 0] and (slices.official == "").all()


def test_a_failure_mid_build_leaves_no_temporary_folder_and_keeps_an_existing_cache(tmp_path):
    images = [hu(seed) for seed in range(6)]
    good = build(tmp_path, images, STUDY)
    parent = tmp_path / "cache" / "slices@1"
    before = sorted(p.name for p in parent.iterdir())
    with pytest.raises(DataError, match="case 3 is broken"):
        build(tmp_path, images, IMAGENET, prep=Preprocessing(windows=[SOFT], size=16), fail_at=3)
    assert sorted(p.name for p in parent.iterdir()) == sorted([*before, f".{_key(images, IMAGENET)}.lock"])
    assert not [p for p in parent.iterdir() if p.is_dir() and p.name.startswith(".")]
    again = read_cache(parent / good.key)
    np.testing.assert_array_equal(again.images, good.images)


def _key(images, convention):
    task = Slices(images)
    prep = Preprocessing(windows=[SOFT], size=16)
    return slice_cache_key(task, "f" * 64, prep, cache_stage(convention, "ct", prep.windows))


def test_slices_that_disagree_in_channels_or_ids_are_refused_without_leftovers(tmp_path):
    with pytest.raises(DataError, match=r"\[1, 3\] channels"):
        build(tmp_path, [hu(0), np.stack([hu(1)] * 3)], STUDY)
    with pytest.raises(DataError, match="no cases"):
        build(tmp_path, [], STUDY)
    assert not [p for p in (tmp_path / "cache" / "slices@1").iterdir() if p.is_dir()]


def test_a_corrupt_meta_or_array_is_a_data_error(tmp_path):
    folder = tmp_path / "cache" / "slices@1" / build(tmp_path, [hu(0), hu(1)], STUDY).key
    meta = json.loads((folder / "meta.json").read_text())
    assert meta["cache_version"] == CACHE_VERSION and meta["cases"] == 2
    (folder / "meta.json").write_text("{not json")
    with pytest.raises(DataError, match="metadata is unreadable"):
        read_cache(folder)
    (folder / "meta.json").write_text("[]")
    with pytest.raises(DataError, match="metadata is unreadable"):
        read_cache(folder)
    (folder / "meta.json").write_text(json.dumps(meta))
    (folder / "images.npy").write_bytes(b"\x93NUMPY garbage")
    with pytest.raises(DataError, match="slice cache is unreadable"):
        read_cache(folder)


def test_the_cache_version_is_part_of_the_key(monkeypatch):
    import benchmark.data.slices as slices_module

    task, prep = Slices([]), Preprocessing()
    key = slice_cache_key(task, "f" * 64, prep)
    monkeypatch.setattr(slices_module, "CACHE_VERSION", 1)
    assert slice_cache_key(task, "f" * 64, prep) != key


def test_streamed_array_reads_back_as_npy(tmp_path):
    rows = np.arange(3 * 2 * 5, dtype=np.float32).reshape(3, 2, 5) / 4
    with StreamedArray(tmp_path / "a.npy") as out:
        out.append(rows[0] * 4, np.uint8)
        out.append(rows[1] * 4, np.uint8)
        out.append(rows[2], np.float16)
        out.finish()
    back = np.load(tmp_path / "a.npy", mmap_mode="r")
    assert back.dtype == np.float16 and back.shape == (3, 2, 5)
    np.testing.assert_array_equal(back[:2], rows[:2] * 4)
    np.testing.assert_array_equal(back[2], rows[2])
