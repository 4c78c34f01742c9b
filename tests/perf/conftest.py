"""Fixtures of the performance suite, and its report: `perf-report.json` (or $CTBENCH_PERF_REPORT)
plus one table of ratios at the end of the session. Settings: see tests/perf/perfkit.py."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.perf.perfkit import PATIENTS, REPO, SLICES_PER_SERIES, THREADS, PerfReport
from tests.perf.workloads import prepare_body_region

REPORT = PerfReport()


def report_path(config) -> Path:
    return Path(os.environ.get("CTBENCH_PERF_REPORT") or REPO / "perf-report.json")


@pytest.fixture(scope="session")
def perf_report() -> PerfReport:
    return REPORT


@pytest.fixture
def pinned_threads():
    """torch and BLAS at $CTBENCH_BENCH_THREADS (default 1, ctbench's --threads default), for both
    sides of every comparison alike."""
    from benchmark.evaluation.accel import cpu_threads

    with cpu_threads(THREADS):
        yield THREADS


@pytest.fixture(scope="session")
def phantom_dicom(tmp_path_factory) -> Path:
    """The embedded phantom's generator at the demo's matrix (128 px), PATIENTS patients x 6 body
    regions x 4 slices; only the labelled DICOM cohort. Generated once, outside any timing."""
    from benchmark.synthetic.phantom import PhantomConfig, generate_dataset

    out = tmp_path_factory.mktemp("perf-phantom") / "data"
    generate_dataset(out, PhantomConfig(seed=11, n_patients=PATIENTS, n_corpus_patients=0,
                                        slices_per_series=SLICES_PER_SERIES, n_lits_volumes=0))
    return out / "dicom"


@pytest.fixture(scope="session")
def body_region(phantom_dicom, tmp_path_factory):
    """phantom-body-region read through its real reader into ctbench's slice cache, and split."""
    return prepare_body_region(phantom_dicom, tmp_path_factory.mktemp("perf-workdir"))


@pytest.fixture(scope="session")
def random_checkpoint(tmp_path_factory):
    """The demo's `random` reference (timm test_resnet, torch seed 0), materialised as a real
    safetensors file the way `ctbench run` does it."""
    from baselines import builtin_checkpoints
    from benchmark.catalog import resolve as checkpoints
    from benchmark.core.workdir import Workdir

    spec = next(c for c in builtin_checkpoints() if c.name == "random")
    return checkpoints.resolve(spec, Workdir(tmp_path_factory.mktemp("perf-checkpoints")))


def pytest_sessionfinish(session, exitstatus):
    if REPORT.sides:
        REPORT.write(report_path(session.config))


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    if not REPORT.sides:
        return
    tr = terminalreporter
    tr.section("ctbench performance report")
    load = REPORT.as_json()["machine"]
    tr.write_line(f"{load['cpus']} CPUs, {THREADS} torch/BLAS thread(s), load average "
                  f"{load['loadavg_start'][0]} at start, {load['loadavg_end'][0]} at end; "
                  f"times are medians of the rounds" + ("" if REPORT.enabled else
                                                        " (benchmarks disabled: no timings, ratios n/a)"))
    for line in REPORT.table():
        tr.write_line(line)
    tr.write_line(f"report: {report_path(config)}")
