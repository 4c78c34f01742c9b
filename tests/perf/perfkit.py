"""What the performance suite shares: its settings, its data, the two linear-evaluation styles
it compares, and the report that `tests/perf/conftest.py` writes and prints.

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
import math
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
        widths = [max(len(str(r[i])) for r in rows) for i in range(len(rows[0]))]
        lines = ["  ".join(str(c).ljust(w) for c, w in zip(row, widths)).rstrip() for row in rows]
        return [lines[0], "-" * len(lines[0]), *lines[1:]]


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


# --------------------------------------------------------------------------------------------
# Data: the phantom, its slice cache and split, and replicated copies for the scaling points
# --------------------------------------------------------------------------------------------

@dataclass
class BodyRegion:
    """``phantom-body-region`` on one phantom dataset: the DICOM folder, the built slice cache
    (memory-mapped, as runs read it), the split and its test rows."""
    root: Path
    task: object
    prep: object
    workdir: object
    fingerprint: str
    cache_folder: Path
    slices: object
    split: object
    test: np.ndarray


def prepare_body_region(root: Path, workdir_root: Path) -> BodyRegion:
    """What `ctbench run` does before any job (benchmark.execution.job_runner.prepare_task), on ``root``."""
    from benchmark.core.workdir import Workdir
    from benchmark.data.slices import load_slices, slice_cache_key
    from benchmark.data.splits import MANIFEST_VERSION, indices_for, make_split
    from benchmark.evaluation.profiles import PROFILES
    from tasks.phantom_region import TASK

    workdir = Workdir(workdir_root)
    task = TASK.bind(root)
    fingerprint = task.fingerprint(root)
    prep = PROFILES["demo"].preprocessing(task.spec.preprocessing)
    slices = load_slices(task, root, prep, workdir.slices, fingerprint)
    folder = workdir.slices / f"{task.spec.name}@{task.spec.version}" / slice_cache_key(task, fingerprint, prep)
    split_path = (workdir.splits / f"{task.spec.name}@{task.spec.version}" / f"{fingerprint[:16]}-m{MANIFEST_VERSION}"
                  / "split.json")
    split = make_split(task.spec.name, task.spec.version, fingerprint, slices.patient_ids, slices.labels, split_path,
                       slices.official)
    return BodyRegion(root, task, prep, workdir, fingerprint, folder, slices, split,
                      indices_for(slices.patient_ids, split.payload["test_patients"]))


@dataclass(frozen=True)
class Job:
    scale: float
    seed: int
    train: np.ndarray
    val: np.ndarray


def grid_jobs(data: BodyRegion, scales=GRID_SCALES, seeds=GRID_SEEDS) -> list[Job]:
    """The label budgets exactly as `ctbench run` writes them (nested, seeded, val carved out)."""
    from benchmark.data.splits import indices_for, make_budget

    jobs = []
    for seed in seeds:
        for scale in scales:
            path = data.split.path.parent / f"seed{seed}" / f"scale-{scale:g}.json"
            budget = make_budget(data.split, seed, scale, data.slices.patient_ids, path)
            jobs.append(Job(scale, seed, indices_for(data.slices.patient_ids, budget.payload["train_patients"]),
                            indices_for(data.slices.patient_ids, budget.payload["val_patients"])))
    return jobs


def replicate_phantom(source: Path, out: Path, n_slices: int, seed: int = 0, workers: Optional[int] = None) -> int:
    """Write whole copies of the phantom's patients, each with its own PatientID, study, series,
    SOP and frame-of-reference UIDs and a little deterministic pixel noise (±8 HU), with pydicom,
    until at least ``n_slices`` files exist. Returns how many were written.

    Rendering a phantom slice costs ~20 ms; rewriting a decoded one ~3 ms, so a 16k-slice dataset
    takes well under a minute instead of five. ``workers`` processes (default: the CPU count, at
    most 8, as the phantom generator) share the patients; the bytes do not depend on it.
    """
    from concurrent.futures import ProcessPoolExecutor
    from multiprocessing import get_context

    patients = sorted(p for p in source.iterdir() if p.is_dir())
    sizes = {p: sum(1 for _ in p.rglob("*.dcm")) for p in patients}
    copies: dict[Path, list[int]] = {}
    total, k = 0, 0
    while total < n_slices:
        for patient in patients:
            if total >= n_slices:
                break
            copies.setdefault(patient, []).append(k)
            total += sizes[patient]
        k += 1
    tasks = [(patient, ks, out, seed) for patient, ks in copies.items()]
    workers = workers or min(os.cpu_count() or 1, 8)
    if workers > 1 and len(tasks) > 1:
        with ProcessPoolExecutor(workers, mp_context=get_context("fork")) as pool:
            return sum(pool.map(_replicate_patient, tasks))
    return sum(map(_replicate_patient, tasks))


def _replicate_patient(task: tuple[Path, list[int], Path, int]) -> int:
    import pydicom

    from benchmark.synthetic.phantom.dicom_writer import make_uid

    patient, copies, out, seed = task
    written = 0
    for n, path in enumerate(sorted(patient.rglob("*.dcm"))):
        ds = pydicom.dcmread(path)  # decoded once, then rewritten in place for each copy
        pixels = np.frombuffer(ds.PixelData, dtype="<i2").astype(np.int32)
        source_id, rel = str(ds.PatientID), path.relative_to(patient)
        for k in copies:
            pid = f"{source_id}~{k:03d}"
            noise = np.random.default_rng([seed, k, n, int.from_bytes(source_id.encode()[-4:], "big")])
            ds.PixelData = np.clip(pixels + noise.integers(-8, 9, pixels.shape), -32768, 32767).astype("<i2").tobytes()
            ds.PatientID = ds.PatientName = pid
            ds.StudyInstanceUID = make_uid("perf", pid, "study")
            ds.SeriesInstanceUID = make_uid("perf", pid, rel.parent.as_posix(), "series")
            ds.FrameOfReferenceUID = make_uid("perf", pid, "frame-of-reference")
            ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = make_uid("perf", pid, rel.as_posix())
            target = out / pid / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            ds.save_as(target, enforce_file_format=True)
            written += 1
    return written


def link_subset(source: Path, out: Path, n_slices: int) -> int:
    """Hard links to the first whole patient folders of ``source`` holding >= ``n_slices`` files."""
    count = 0
    for patient in sorted(p for p in source.iterdir() if p.is_dir()):
        if count >= n_slices:
            break
        for path in sorted(patient.rglob("*.dcm")):
            target = out / path.relative_to(source)
            target.parent.mkdir(parents=True, exist_ok=True)
            os.link(path, target)
            count += 1
    return count


# --------------------------------------------------------------------------------------------
# The two linear evaluations of comparison 2
# --------------------------------------------------------------------------------------------

def ctbench_linear(data: BodyRegion, checkpoint, jobs: list[Job], feature_path: Path) -> dict:
    """ctbench's way: frozen features extracted once (into the feature cache), then the `linear`
    protocol (warm-started C path, selection on val, refit on train + val) for every job."""
    import torch

    from benchmark.evaluation.accel import Accelerator, seed_everything
    from benchmark.evaluation.features import cached_features, extract
    from benchmark.evaluation.profiles import PROFILES
    from benchmark.evaluation.protocols import PROTOCOLS, JobContext
    from benchmark.models.load import load_backbone

    accel = Accelerator.create(torch.device("cpu"))
    features, _ = cached_features(feature_path, data.slices, lambda: (
        extract(load_backbone(checkpoint), data.slices, checkpoint, accel, PROFILES["demo"].batch_size), {}))
    main = data.task.spec.main_metric
    scores = {}
    for job in jobs:
        ctx = JobContext(data.task.spec, checkpoint, data.slices, job.train, job.val, data.test, job.seed,
                         lambda: features)
        seed_everything(job.seed)
        scores[f"scale={job.scale:g},seed={job.seed}"] = PROTOCOLS.get("linear").run(ctx).metrics[main]
    return scores


def study_linear(data: BodyRegion, checkpoint, jobs: list[Job], epochs: int = STUDY_EPOCHS) -> dict:
    """The study's way: per job, a torch ``nn.Linear`` head (behind a parameter-free BatchNorm) on the
    frozen backbone, trained by SGD
    for ``epochs`` epochs, each of which forwards every training image through the backbone
    again; then the test set is forwarded once and scored with the same metric code."""
    import torch
    from torch import nn
    from torch.nn import functional as F

    from benchmark.evaluation.inputs import to_model_input
    from benchmark.evaluation.metrics import score
    from benchmark.models.load import load_backbone

    backbone = load_backbone(checkpoint).eval()
    for p in backbone.parameters():
        p.requires_grad_(False)
    images, labels = data.slices.images, torch.from_numpy(np.asarray(data.slices.labels))
    n_classes, batch = len(data.task.spec.class_names), STUDY_RECIPE["batch_size"]
    scores = {}
    for job in jobs:
        torch.manual_seed(job.seed)
        rng = np.random.default_rng(job.seed)
        rows = np.concatenate([job.train, job.val])
        head = nn.Sequential(nn.BatchNorm1d(backbone.num_features, affine=False),
                             nn.Linear(backbone.num_features, n_classes)).train()
        opt = torch.optim.SGD(head.parameters(), lr=STUDY_RECIPE["lr"], momentum=STUDY_RECIPE["momentum"],
                              weight_decay=STUDY_RECIPE["weight_decay"])
        schedule = torch.optim.lr_scheduler.ExponentialLR(opt, STUDY_RECIPE["decay"])
        for _ in range(epochs):
            order = rng.permutation(rows)
            for start in range(0, len(order), batch):
                idx = order[start:start + batch]
                with torch.no_grad():
                    feats = backbone(to_model_input(images[idx], checkpoint))
                loss = F.cross_entropy(head(feats), labels[idx])
                opt.zero_grad()
                loss.backward()
                opt.step()
            schedule.step()
        head.eval()
        with torch.inference_mode():
            prob = torch.cat([F.softmax(head(backbone(to_model_input(images[data.test[s:s + batch]], checkpoint))), 1)
                              for s in range(0, len(data.test), batch)]).numpy().astype(np.float64)
        metrics = score(data.task.spec, np.asarray(data.slices.labels)[data.test], data.slices.patient_ids[data.test],
                        {"probabilities": prob})
        scores[f"scale={job.scale:g},seed={job.seed}"] = metrics[data.task.spec.main_metric]
    return scores


def loglog_slope(x: list[float], y: list[float]) -> float:
    """Least-squares exponent k of y ~ x^k."""
    return float(np.polyfit(np.log(x), np.log(y), 1)[0]) if len(x) >= 2 else math.nan
