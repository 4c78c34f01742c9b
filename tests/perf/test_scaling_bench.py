"""Comparison 5: how data preparation plus the linear protocol scale with the number of slices.

At each size (CTBENCH_BENCH_SCALING_SIZES, default 1000,4000,16000 slices; rounded up to whole
patients of 24 slices) the timed region is what `ctbench run` does for phantom-body-region's
linear jobs on a fresh workdir:

* data preparation: the dataset fingerprint, the slice cache built from DICOM (pydicom, HU,
  windows, resize, float16 .npy) and the split manifest;
* linear protocol: budgets, features of every slice extracted once, and the `linear` protocol on
  a small grid (scales 1 and 0.1, seed 42).

The DICOM files are made outside the timing: the phantom's patients are copied with new
PatientIDs and UIDs and a little pixel noise (workloads.replicate_phantom), once for the largest
size; smaller sizes hard-link the first patients. The exponent k of time ~ slices^k is fitted
on log-log axes.
"""
import shutil
import time

import pytest

from tests.perf.perfkit import MAX_SCALING_EXPONENT, SCALING_SCALES, SCALING_SEEDS, SCALING_SIZES
from tests.perf.workloads import (
    ctbench_linear,
    grid_jobs,
    link_subset,
    loglog_slope,
    prepare_body_region,
    replicate_phantom,
)

GROUP = "scaling"


@pytest.fixture(scope="module")
def scaling_roots(phantom_dicom, tmp_path_factory):
    base = tmp_path_factory.mktemp("perf-scaling")
    started = time.perf_counter()
    largest = base / f"dicom-{max(SCALING_SIZES)}"
    written = {max(SCALING_SIZES): replicate_phantom(phantom_dicom, largest, max(SCALING_SIZES))}
    roots = {max(SCALING_SIZES): largest}
    for size in sorted(set(SCALING_SIZES) - {max(SCALING_SIZES)}):
        roots[size] = base / f"dicom-{size}"
        written[size] = link_subset(largest, roots[size], size)
    yield {"roots": roots, "files": written, "generation_s": time.perf_counter() - started}
    shutil.rmtree(base, ignore_errors=True)  # up to ~0.6 GB of DICOM


def prepare_and_probe(root, workdir_root, checkpoint) -> dict:
    started = time.perf_counter()
    data = prepare_body_region(root, workdir_root)
    prepared = time.perf_counter()
    scores = ctbench_linear(data, checkpoint, grid_jobs(data, SCALING_SCALES, SCALING_SEEDS),
                            workdir_root / "features.npz")
    done = time.perf_counter()
    return {"slices": len(data.slices), "prep_s": prepared - started, "linear_s": done - prepared,
            "total_s": done - started, "scores": scores}


@pytest.mark.benchmark(group=GROUP)
@pytest.mark.parametrize("size", SCALING_SIZES, ids=[f"{s}-slices" for s in SCALING_SIZES])
def test_prepare_and_linear(benchmark, scaling_roots, random_checkpoint, perf_report, pinned_threads, tmp_path,
                            size):
    rounds = iter(range(100))

    def fresh():  # a new workdir each round: nothing cached
        return (scaling_roots["roots"][size], tmp_path / f"work-{next(rounds)}", random_checkpoint), {}

    def drop(root, work, checkpoint):  # its slice cache is ~0.4 GB at 16k slices
        shutil.rmtree(work, ignore_errors=True)

    result = benchmark.pedantic(prepare_and_probe, setup=fresh, teardown=drop, rounds=1)
    assert result["slices"] == scaling_roots["files"][size] >= size
    perf_report.record(GROUP, f"{size}-slices", benchmark, threads=pinned_threads, requested=size,
                       generation_s_all_sizes=scaling_roots["generation_s"],
                       grid={"scales": SCALING_SCALES, "seeds": SCALING_SEEDS}, **result)


def test_scaling_exponent(perf_report):
    points = sorted(perf_report.sides.get(GROUP, {}).values(), key=lambda e: e["slices"])
    if len(points) < 2:
        pytest.skip("needs at least two scaling points")
    slices = [p["slices"] for p in points]
    fit = {part: loglog_slope(slices, [p[f"{part}_s"] for p in points]) for part in ("prep", "linear", "total")}
    perf_report.checks["scaling-exponent"] = {**fit, "slices": slices, "max": MAX_SCALING_EXPONENT,
                                              "met": fit["total"] < MAX_SCALING_EXPONENT}
    assert fit["total"] < MAX_SCALING_EXPONENT, f"time grows as slices^{fit['total']:.2f}"
