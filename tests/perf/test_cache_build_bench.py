"""Building the slice cache streams: its peak memory does not grow with the number of slices, and
a slice costs about its source's own bytes on disk (uint8 for an 8-bit grey image, int16 for CT).

Peak RSS is per process, so each build runs in a fresh interpreter (``python -m
tests.perf.test_cache_build_bench N SOURCE FOLDER``) that reports, as JSON, its RSS after the
imports and its peak RSS (``ru_maxrss``) after building a 256 x 256 cache of N synthetic slices in
the study's raw stage (bilinear resize, then min-max when fed). The slices are generated, not
read: only the cache build is measured. Version 1 of the cache (every slice in a list, then
``np.stack``) grew by 254 MiB at 1,000 CT slices and 1,005 MiB at 4,000 here; version 2 by ~5 MiB.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.perf.perfkit import REPO, env_ints

SIZES = env_ints("CTBENCH_BENCH_CACHE_SLICES", (1000, 4000))
SIZE_PX = 256
MAX_RSS_GROWTH_RATIO = 1.5  # growth at SIZES[-1] slices over growth at SIZES[0]
MAX_BYTES_PER_SLICE = {"grey8": 70_000, "ct_hu": 135_000}
# Growth below this is the allocator's and MONAI's first-call noise (a streamed build grows by
# ~5 MiB at any size), so a ratio is taken of growths of at least this much.
NOISE_FLOOR_MIB = 8.0


def test_cache_build_memory_is_flat_and_slices_are_compact(tmp_path, perf_report):
    runs = {(source, n): build_in_subprocess(n, source, tmp_path / f"{source}-{n}")
            for source in MAX_BYTES_PER_SLICE for n in SIZES}
    small, large = SIZES[0], SIZES[-1]
    check = {"slices": list(SIZES), "size_px": SIZE_PX, "max_growth_ratio": MAX_RSS_GROWTH_RATIO,
             "noise_floor_mib": NOISE_FLOOR_MIB,
             "max_bytes_per_slice": MAX_BYTES_PER_SLICE, "runs": {f"{s}@{n}": r for (s, n), r in runs.items()}}
    ratios = {source: max(runs[source, large]["growth_mib"], NOISE_FLOOR_MIB)
              / max(runs[source, small]["growth_mib"], NOISE_FLOOR_MIB)
              for source in MAX_BYTES_PER_SLICE}
    per_slice = {source: runs[source, large]["bytes_per_slice"] for source in MAX_BYTES_PER_SLICE}
    check.update(growth_ratio=ratios, bytes_per_slice=per_slice,
                 met=all(r <= MAX_RSS_GROWTH_RATIO for r in ratios.values())
                 and all(per_slice[s] <= MAX_BYTES_PER_SLICE[s] for s in per_slice))
    perf_report.checks["cache_build_rss"] = check
    perf_report.sides["cache-build"] = check["runs"]  # not timed; recorded so the report is written
    for source, ratio in ratios.items():
        assert ratio <= MAX_RSS_GROWTH_RATIO, f"{source}: peak RSS growth {ratio:.2f}x from {small} to {large} slices"
        assert per_slice[source] <= MAX_BYTES_PER_SLICE[source], f"{source}: {per_slice[source]:.0f} bytes a slice"


def build_in_subprocess(n: int, source: str, folder: Path) -> dict:
    env = {**os.environ, "PYTHONPATH": str(REPO), "TQDM_DISABLE": "1"}
    done = subprocess.run([sys.executable, "-m", "tests.perf.test_cache_build_bench", str(n), source, str(folder)],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=1800)
    assert done.returncode == 0, done.stderr[-4000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def synthetic_task(n: int, source: str):
    """A task whose cases are generated 256 x 256 slices, float32 as the readers give them: an
    8-bit grey image (0-255), or CT in whole HU (-1024 to 3071)."""
    import numpy as np

    from benchmark.core.specs import Preprocessing, TaskSpec
    from benchmark.data.task import Case, Task

    rng = np.random.default_rng(0)
    low, high = (0, 256) if source == "grey8" else (-1024, 3072)
    base = rng.integers(low, high, (SIZE_PX, SIZE_PX)).astype(np.float32)

    class Generated(Task):
        spec = TaskSpec(name=f"generated-{source}", version="1", domain="xray" if source == "grey8" else "ct",
                        kind="classification", class_names=["a", "b"], metrics=["auc"], main_metric="auc",
                        preprocessing=Preprocessing(size=SIZE_PX))

        def cases(self, root):
            for i in range(n):
                yield Case(f"s{i:05d}", f"p{i // 50:03d}", np.roll(base, i, axis=0), i % 2, {})

    return Generated()


def _rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


def _measure(n: int, source: str, folder: Path) -> dict:
    import resource

    from benchmark.core.specs import INPUT_CONVENTIONS
    from benchmark.data.slices import load_slices

    task = synthetic_task(n, source)
    before = _rss_mib()
    slices = load_slices(task, folder, task.spec.preprocessing, folder / "cache", "f" * 64,
                         INPUT_CONVENTIONS["minmax_grey3"])
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    cache = folder / "cache" / f"{task.spec.name}@1" / slices.key
    on_disk = sum(p.stat().st_size for p in cache.iterdir())
    return {"slices": n, "source": source, "dtype": str(slices.images.dtype), "shape": list(slices.images.shape),
            "rss_before_mib": round(before, 1), "peak_rss_mib": round(peak, 1),
            "growth_mib": round(peak - before, 1), "bytes_per_slice": on_disk / n}


if __name__ == "__main__":
    print(json.dumps(_measure(int(sys.argv[1]), sys.argv[2], Path(sys.argv[3]))))
