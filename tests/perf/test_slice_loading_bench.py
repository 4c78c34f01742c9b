"""Comparison 1: an epoch over ctbench's slice cache against decoding DICOM on every access.

One epoch touches every slice of phantom-body-region once, as a float32 tensor, and sums it.
The cache side opens the cache folder (`read_cache`: the images memory-mapped) and reads each
slice; the per-access side reads each file with the task's own reader (pydicom, HU from
RescaleSlope/Intercept) and runs the task's `slice_transform` (three HU windows, resize to
64 px), as a pipeline without a cache does in every epoch. The file list is made once, as a
Dataset's __init__ would. Both sides see the same files, and give the same arrays.
"""
import numpy as np
import pytest
import torch

from benchmark.data.slices import read_cache
from benchmark.data.transforms import slice_transform

GROUP = "slice-loading"


def cache_epoch(folder) -> float:
    slices = read_cache(folder)
    total = 0.0
    for i in range(len(slices)):
        total += float(torch.from_numpy(np.asarray(slices.images[i], dtype=np.float32)).sum())
    return total


def dicom_epoch(task, root, units, transform) -> float:
    total = 0.0
    for unit in units:
        for case in task.read(root, unit):
            total += float(torch.from_numpy(transform(case.image, case.meta["spacing"])).sum())
    return total


def test_both_paths_give_the_same_slices(body_region):
    """Not timed: the per-access pipeline reproduces the cached arrays (float16 rounding apart)."""
    data = body_region
    transform = slice_transform(data.prep)
    cached = read_cache(data.cache_folder)
    cases = [c for unit in data.task.units(data.root) for c in data.task.read(data.root, unit)]
    assert [c.case_id for c in cases] == cached.case_ids.tolist()
    for i, case in enumerate(cases):
        np.testing.assert_allclose(transform(case.image, case.meta["spacing"]), cached.images[i].astype(np.float32),
                                   rtol=0, atol=2 ** -11)  # half an ulp of float16 just below 1
    assert np.array_equal([c.label for c in cases], cached.labels)


@pytest.mark.benchmark(group=GROUP)
@pytest.mark.parametrize("side", ["slice-cache", "dicom-per-access"])
def test_epoch(benchmark, body_region, perf_report, pinned_threads, side):
    data = body_region
    if side == "slice-cache":
        total = benchmark(cache_epoch, data.cache_folder)
    else:
        units = data.task.units(data.root)
        total = benchmark.pedantic(dicom_epoch, args=(data.task, data.root, units, slice_transform(data.prep)),
                                   rounds=3, iterations=1)
    perf_report.record(GROUP, side, benchmark, slices=len(data.slices), matrix_px=128, size_px=data.prep.size,
                       channels=data.prep.channels, threads=pinned_threads, epoch_sum=total)


def test_slice_cache_speedup(perf_report):
    sides = perf_report.sides.get(GROUP, {})
    if len(sides) < 2:
        pytest.skip("both sides of the slice-loading comparison must run first")
    a, b = sides["dicom-per-access"]["epoch_sum"], sides["slice-cache"]["epoch_sum"]
    assert abs(a - b) <= 1e-3 * abs(a), "the two epochs did not read the same pixels"
    perf_report.check_speedup(GROUP, "slice cache per epoch against DICOM per access")
