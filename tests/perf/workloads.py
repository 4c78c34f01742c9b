"""The workloads the performance suite times: ``phantom-body-region``'s data, slice cache and split,
replicated copies of it for the scaling points, the label budgets of a grid, and the two
linear-evaluation styles it compares (ctbench's protocol and the study-style SGD head).
Their sizes are the settings of `tests/perf/perfkit.py`.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np

from tests.perf.perfkit import GRID_SCALES, GRID_SEEDS, STUDY_EPOCHS, STUDY_RECIPE

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
