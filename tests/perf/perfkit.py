"""What the performance suite shares: its settings and the report that `tests/perf/conftest.py`
writes and prints. The workloads it times (the phantom data, the label budgets, the two
linear-evaluation styles) are in `tests/perf/workloads.py`.

Every size is an environment variable, so a smoke run can be tiny and a full run large:

=============================  =======================  ==========================================
variable                       default                  what
=============================  =======================  ==========================================
CTBENCH_BENCH_PATIENTS         20                       phantom patients (x 6 regions x 4 slices)
CTBENCH_BENCH_THREADS          1                        torch/BLAS threads (ctbench's ``--threads``)
CTBENCH_BENCH_SCALING_SIZES    1000,4000,16000          slices per scaling point
CTBENCH_BENCH_THROUGHPUT_N     256                      images per throughput round
CTBENCH_BENCH_EMBEDDED         unset (make bench: 1)    1: time the embedded ``ctbench run``
CTBENCH_PERF_REPORT            <repo>/perf-report.json  where the JSON report goes
=============================  =======================  ==========================================
"""
from __future__ import annotations

import json
import os
import platform
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np

REPO = Path(__file__).resolve().parents[2]


def env_int(name: str, default: int) -> int:
    return int(os.environ.get(name) or default)


def env_float(name: str, default: float) -> float:
    return float(os.environ.get(name) or default)


def env_ints(name: str, default: tuple[int, ...]) -> tuple[int, ...]:
    text = os.environ.get(name)
    return tuple(int(v) for v in text.split(",") if v.strip()) if text else default


THREADS = env_int("CTBENCH_BENCH_THREADS", 1)
PATIENTS = env_int("CTBENCH_BENCH_PATIENTS", 20)
SLICES_PER_SERIES = 4  # as the embedded default (tasks/embedded.py); 6 regions -> 24 slices a patient
SCALING_SIZES = env_ints("CTBENCH_BENCH_SCALING_SIZES", (1000, 4000, 16000))
THROUGHPUT_IMAGES = env_int("CTBENCH_BENCH_THROUGHPUT_N", 256)
EMBEDDED = os.environ.get("CTBENCH_BENCH_EMBEDDED") == "1"

# Comparison 2's grid: two label budgets x the demo profile's three seeds, on one split.
GRID_SCALES = (1.0, 0.5)
GRID_SEEDS = (42, 1, 2)
SCALING_SCALES, SCALING_SEEDS = (1.0, 0.1), (42,)  # the scaling points' smaller grid
STUDY_EPOCHS = 20
# The study-style head: a linear layer behind a parameter-free BatchNorm (MAE's linear probe: the
# pooled features of a random-init backbone have std ~0.09, on which plain SGD barely moves in 20
# short epochs), SGD with momentum, the study's per-epoch 0.97 decay and the demo profile's batch;
# the last epoch is evaluated (the study's selection rule). lr 0.1 was the best of 0.01/0.1/1.
STUDY_RECIPE = dict(head="BatchNorm1d(affine=False) + Linear", optimizer="sgd", lr=0.1, momentum=0.9,
                    weight_decay=0.0, batch_size=64, decay=0.97,
                    epochs=STUDY_EPOCHS, selection="last epoch", train_on="budget (train + val)")

TARGETS = {  # comparison -> (minimum speed-up, baseline side, ctbench side)
    "slice-loading": (env_float("CTBENCH_BENCH_SLICE_TARGET", 20.0), "dicom-per-access", "slice-cache"),
    "linear-protocol": (env_float("CTBENCH_BENCH_LINEAR_TARGET", 30.0), "study-sgd-head", "ctbench-linear"),
}
ACCURACY_MARGIN = 0.01  # ctbench's main metric may be at most this much below the study-style one
MAX_SCALING_EXPONENT = env_float("CTBENCH_BENCH_MAX_EXPONENT", 1.3)


# --------------------------------------------------------------------------------------------
# The report
# --------------------------------------------------------------------------------------------

@dataclass
class PerfReport:
    """Everything the suite measured; written as JSON and printed as one table at the end."""
    sides: dict = field(default_factory=dict)  # group -> side -> timings + extra info
    checks: dict = field(default_factory=dict)  # comparison -> what its target test found
    started: float = field(default_factory=time.time)
    load_start: tuple = field(default_factory=lambda: tuple(round(v, 2) for v in os.getloadavg()))
    enabled: Optional[bool] = None

    def record(self, group: str, side: str, benchmark, **info) -> dict:
        """The benchmark fixture's stats (when benchmarks are enabled) plus ``info``, which also goes
        into the fixture's ``extra_info`` (and so into pytest-benchmark's own JSON)."""
        entry = {k: _plain(v) for k, v in info.items()}
        benchmark.extra_info.update(entry)
        stats = getattr(getattr(benchmark, "stats", None), "stats", None)
        self.enabled = bool(stats) if self.enabled is None else self.enabled or bool(stats)
        if stats:
            entry.update(median_s=stats.median, mean_s=stats.mean, min_s=stats.min, max_s=stats.max,
                         stddev_s=stats.stddev, rounds=stats.rounds)
        self.sides.setdefault(group, {})[side] = entry
        return entry

    def median(self, group: str, side: str) -> Optional[float]:
        return self.sides.get(group, {}).get(side, {}).get("median_s")

    def speedup(self, group: str) -> Optional[float]:
        """Baseline median / ctbench median; None unless both sides were timed."""
        _, baseline, ours = TARGETS[group]
        a, b = self.median(group, baseline), self.median(group, ours)
        return a / b if a and b else None

    def check_speedup(self, group: str, what: str) -> None:
        """Record and assert a comparison's target; skips where its timings are missing."""
        import pytest

        target = TARGETS[group][0]
        ratio = self.speedup(group)
        if ratio is None:
            pytest.skip("benchmarks are disabled (run with --benchmark-enable): no timings to compare")
        self.checks[group] = {"speedup": ratio, "target": target, "met": ratio >= target}
        assert ratio >= target, f"{what}: {ratio:.1f}x, target {target:g}x"

    def as_json(self) -> dict:
        comparisons = {}
        for group, (target, baseline, ours) in TARGETS.items():
            if group in self.sides:
                ratio = self.speedup(group)
                comparisons[group] = {"baseline": baseline, "ctbench": ours, "speedup": ratio,
                                      "baseline_median_s": self.median(group, baseline),
                                      "ctbench_median_s": self.median(group, ours),
                                      "target_speedup": target, "met": None if ratio is None else ratio >= target}
        return {
            "what": "ctbench performance suite (tests/perf), medians of pytest-benchmark rounds",
            "benchmarks_enabled": bool(self.enabled),
            "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version(),
                        "torch_threads": THREADS, "loadavg_start": self.load_start,
                        "loadavg_end": tuple(round(v, 2) for v in os.getloadavg()), **_versions()},
            "settings": {"patients": PATIENTS, "slices_per_series": SLICES_PER_SERIES, "grid_scales": GRID_SCALES,
                         "grid_seeds": GRID_SEEDS, "study_recipe": STUDY_RECIPE, "scaling_sizes": SCALING_SIZES,
                         "scaling_grid": {"scales": SCALING_SCALES, "seeds": SCALING_SEEDS},
                         "throughput_images": THROUGHPUT_IMAGES, "embedded": EMBEDDED},
            "comparisons": comparisons,
            "checks": self.checks,
            "sides": self.sides,
            "wall_s": round(time.time() - self.started, 1),
        }

    def write(self, path: Path) -> None:
        path.write_text(json.dumps(self.as_json(), indent=2, sort_keys=True, default=_plain) + "\n")

    def table(self) -> list[str]:
        """One table: each comparison's two medians and their ratio, then the single-sided figures."""
        rows = [("measurement", "baseline", "ctbench", "ratio", "target")]
        for group, (target, baseline, ours) in TARGETS.items():
            sides = self.sides.get(group)
            if not sides:
                continue
            ratio = self.speedup(group)
            size = sides.get(ours, {}).get("slices") or sides.get(baseline, {}).get("slices")
            rows.append((f"{group} ({size} slices)" if size else group,
                         f"{baseline} {_s(self.median(group, baseline))}", f"{ours} {_s(self.median(group, ours))}",
                         f"{ratio:.1f}x" if ratio else "n/a", f">= {target:g}x {_verdict(ratio, target)}"))
        acc = self.checks.get("linear-protocol-accuracy")
        if acc:
            rows.append(("  main metric (mean of grid)", f"{acc['study']:.3f}", f"{acc['ctbench']:.3f}",
                         f"{acc['ctbench'] - acc['study']:+.3f}",
                         f">= -{ACCURACY_MARGIN:g} {'met' if acc['met'] else 'MISSED'}"))
        throughput = self.sides.get("feature-throughput", {})
        for side in sorted(throughput, key=lambda s: throughput[s].get("batch_size", 0)):
            entry = throughput[side]
            ips = entry["images"] / entry["median_s"] if entry.get("median_s") else None
            rows.append((f"features {entry.get('arch')} {entry.get('size')}px, batch {entry['batch_size']}", "",
                         f"{ips:.0f} img/s" if ips else "n/a", "", f"{entry.get('threads')} thread(s)"))
        scaling = self.sides.get("scaling", {})
        for side in sorted(scaling, key=lambda s: scaling[s]["slices"]):
            entry = scaling[side]
            rows.append((f"scaling {entry['slices']} slices", f"prep {_s(entry['prep_s'])}",
                         f"linear {_s(entry['linear_s'])}", f"total {_s(entry['total_s'])}", ""))
        fit = self.checks.get("scaling-exponent")
        if fit:
            rows.append(("  exponent, time ~ slices^k", f"prep {fit['prep']:.2f}", f"linear {fit['linear']:.2f}",
                         f"total {fit['total']:.2f}", f"< {fit['max']:g} {'met' if fit['met'] else 'MISSED'}"))
        embedded = self.sides.get("embedded", {})
        if embedded:
            cold, warm = embedded.get("cold", {}), embedded.get("warm", {})
            cold_s, warm_s = (e.get("median_s") or e.get("wall_s") for e in (cold, warm))
            ratio = cold_s / warm_s if cold_s and warm_s else None
            peak = max(e.get("peak_rss_mib", 0) for e in embedded.values())
            rows.append(("embedded `ctbench run`", f"cold {_s(cold_s)}", f"warm {_s(warm_s)}",
                         f"{ratio:.0f}x" if ratio else "n/a", f"peak RSS {peak:.0f} MiB"))
        rows.extend(_check_rows(self.checks))
        widths = [max(len(str(r[i])) for r in rows) for i in range(len(rows[0]))]
        lines = ["  ".join(str(c).ljust(w) for c, w in zip(row, widths)).rstrip() for row in rows]
        return [lines[0], "-" * len(lines[0]), *lines[1:]]


def _met(check: dict) -> str:
    return "met" if check.get("met") else "MISSED" if check.get("met") is False else "n/a"


def _check_rows(checks: dict) -> list[tuple]:
    """One row per paper-scale check (tests/perf/test_*_bench.py), when it ran."""
    rows = []
    host = checks.get("train_input_host")
    if host:
        per_layout = ", ".join(f"{k} {v['measured_ms_per_image']:.3f}" for k, v in sorted(host["layouts"].items()))
        rows.append(("train_input_host, ms/image", "", per_layout, "", f"<= {host['target']:g} {_met(host)}"))
    cache = checks.get("cache_build_rss")
    if cache:
        growth = ", ".join(f"{k} {v:.2f}x" for k, v in sorted(cache["growth_ratio"].items()))
        size = ", ".join(f"{k} {v / 1000:.0f} KB" for k, v in sorted(cache["bytes_per_slice"].items()))
        rows.append(("cache_build_rss", f"RSS growth {growth}", size, "", _met(cache)))
    scale = checks.get("linear_probe_scale")
    if scale:
        for solver in ("torch", "sklearn"):
            entry = scale.get(solver)
            if entry:
                last = entry["points"][-1]
                rows.append((f"linear_probe_scale {solver}", f"{last['rows']} rows {_s(last['seconds'])}",
                             f"memory {entry['peak_memory_ratio']:.2f}x", f"exponent {entry['exponent']:.2f}",
                             f"1.28M ~{_s(entry['projected_s_at_1.28M'])}" + (f" {_met(scale)}" if solver == "torch" else "")))
    parity = checks.get("linear_probe_parity")
    if parity:
        rows.append(("linear_probe_parity", f"same C {parity['same_C_share']:.0%}",
                     f"max metric gap {parity['max_metric_gap']:.4f}", f"{len(parity['jobs'])} jobs", _met(parity)))
    state = checks.get("training_state_save")
    if state:
        saves = ", ".join(f"{k} {_s(v['save_s'])} ({v['size_mib']:.0f} MiB)" for k, v in sorted(state["optimizers"].items()))
        loads = ", ".join(f"{k} {_s(v['load_s'])}" for k, v in sorted(state["optimizers"].items()))
        rows.append(("training_state_save (ResNet-50)", saves, f"load {loads}", "", f"<= {_s(state['target'])} "
                     f"{_met(state)}"))
    return rows


def _s(seconds: Optional[float]) -> str:
    if seconds is None:
        return "n/a"
    return f"{seconds * 1000:.1f} ms" if seconds < 1 else f"{seconds:.2f} s"


def _verdict(ratio: Optional[float], target: float) -> str:
    return "" if ratio is None else "met" if ratio >= target else "MISSED"


def _plain(value):
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    if isinstance(value, (tuple, Path)):
        return list(value) if isinstance(value, tuple) else str(value)
    return value


def _versions() -> dict:
    import sklearn
    import torch

    return {"torch": torch.__version__, "sklearn": sklearn.__version__, "numpy": np.__version__}

