"""Comparison 4: the embedded default as `make demo` runs it, `ctbench run --jobs N`, cold and warm.

N is one worker per core, at most 4, as in the Makefile. Opt-in (minutes cold on a 2-core
machine): CTBENCH_BENCH_EMBEDDED=1, which `make bench` sets. Cold is a fresh --workdir
(generates both datasets, pretrains the two SimCLR references, runs the 216 jobs, the
analysis and the site); warm is the same command again (every job already done). Each command
runs under a small Python wrapper that reports the peak RSS of the largest process it started
(`resource.getrusage(RUSAGE_CHILDREN).ru_maxrss`), so no other child of pytest is counted.
"""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.perf.perfkit import EMBEDDED, REPO

DEMO_JOBS = min(os.cpu_count() or 1, 4)  # the Makefile's JOBS

GROUP = "embedded"
pytestmark = pytest.mark.skipif(not EMBEDDED, reason="opt-in: set CTBENCH_BENCH_EMBEDDED=1 (make bench does)")

_MEASURE = """
import json, resource, subprocess, sys, time
start = time.perf_counter()
rc = subprocess.call(sys.argv[2:])
peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
json.dump({"rc": rc, "wall_s": time.perf_counter() - start, "peak_rss_kib": peak_kib}, open(sys.argv[1], "w"))
"""


def _ctbench() -> list[str]:
    script = Path(sys.executable).with_name("ctbench")
    return [str(script)] if script.is_file() else [sys.executable, "-m", "benchmark.cli"]


def run_embedded(workdir: Path, measure: Path) -> dict:
    """`ctbench run --workdir DIR --jobs N` in a subprocess; stdout's last line is the site's index.html."""
    env = {**os.environ, "TQDM_DISABLE": "1", "PYTHONUNBUFFERED": "1"}
    proc = subprocess.run([sys.executable, "-c", _MEASURE, str(measure), *_ctbench(), "run", "--workdir", str(workdir),
                           "--jobs", str(DEMO_JOBS)], capture_output=True, text=True, env=env, cwd=REPO, timeout=3600)
    result = json.loads(measure.read_text())
    assert proc.returncode == 0 and result["rc"] == 0, \
        f"ctbench run failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}"
    assert proc.stdout.strip().splitlines()[-1].endswith("index.html")
    return result


@pytest.fixture(scope="module")
def embedded_workdir(tmp_path_factory) -> dict:
    return {"workdir": tmp_path_factory.mktemp("perf-embedded") / "work", "cold_done": False}


@pytest.mark.benchmark(group=GROUP)
def test_embedded_cold(benchmark, embedded_workdir, perf_report, tmp_path):
    result = benchmark.pedantic(run_embedded, args=(embedded_workdir["workdir"], tmp_path / "m.json"), rounds=1)
    embedded_workdir["cold_done"] = True
    perf_report.record(GROUP, "cold", benchmark, wall_s=result["wall_s"], peak_rss_mib=result["peak_rss_kib"] / 1024,
                       command=f"ctbench run --workdir <fresh> --jobs {DEMO_JOBS}")


@pytest.mark.benchmark(group=GROUP)
def test_embedded_warm(benchmark, embedded_workdir, perf_report, tmp_path):
    if not embedded_workdir["cold_done"]:  # run alone: make the workdir first, untimed
        run_embedded(embedded_workdir["workdir"], tmp_path / "cold.json")
    result = benchmark.pedantic(run_embedded, args=(embedded_workdir["workdir"], tmp_path / "m.json"), rounds=3)
    perf_report.record(GROUP, "warm", benchmark, wall_s=result["wall_s"], peak_rss_mib=result["peak_rss_kib"] / 1024,
                       command="the same command again (every job done)")
