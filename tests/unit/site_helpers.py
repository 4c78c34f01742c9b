"""Hand-written result stores for the site tests of issue 20: local results, ingested bundles
(a local result plus a ``submission`` section, stored as the ingest lays them out) and imports."""
from pathlib import Path

import numpy as np

from benchmark.core.workdir import Workdir
from benchmark.results.job import Job
from benchmark.results.store import ResultStore

TASKS = {"ct-task": "ct", "mri-task": "mri"}


def predictions(shift: float, n_patients: int = 12) -> dict:
    """Two slices per patient; a larger ``shift`` gives better-separated probabilities."""
    rng = np.random.default_rng(int(shift * 1000))
    y = np.tile([0, 1], n_patients)
    p1 = np.clip(0.5 + (y - 0.5) * shift + rng.normal(0, 0.2, len(y)), 0.01, 0.99)
    return {"case_ids": np.array([f"c{i}" for i in range(len(y))]),
            "patient_ids": np.repeat([f"p{i}" for i in range(n_patients)], 2),
            "y_true": y, "probabilities": np.stack([1 - p1, p1], axis=1)}


def result(checkpoint: str, domain: str, task: str, seed: int, value: float, scale: float = 1.0,
           submission: dict | None = None, preds: dict | None = None,
           membership: str | None = None) -> tuple[Job, dict, dict]:
    job = Job(checkpoint, "a" * 64, task, "1", "linear", "1", scale, seed, "demo")
    payload = {
        "job": job.as_dict(), "metrics": {"accuracy": value},
        "main_metric": {"name": "accuracy", "value": value, "higher_is_better": True},
        "task": {"name": task, "version": "1", "domain": TASKS.get(task, "ct"), "kind": "classification",
                 "class_names": ["no", "yes"], "metrics": ["accuracy"], "main_metric": "accuracy"},
        "counts": {"train_cases": 10, "val_cases": 2, "test_cases": 12},
        "checkpoint": {"name": checkpoint, "pretraining_domain": domain},
        "predictions_file": f"{job.job_id}.predictions.npz",
    }
    if submission:
        payload["submission"] = submission
    if membership:
        payload["splits"] = {"split_membership": membership}
    return job, payload, preds if preds is not None else {"y_true": np.zeros(1)}


def submission(status: str, submitter: str, sha: str) -> dict:
    return {"status": status, "submitter": submitter, "bundle_sha256": sha, "ingested_with": "0.test"}


def write(store: ResultStore, item: tuple) -> Path:
    return store.write(*item)


def provenance_workdir(root: Path, with_predictions: bool = False, scales=(1.0,)) -> Workdir:
    """imagenet (the natural baseline) and ct-local run here; ct-verified and ct-self in two bundles."""
    workdir = Workdir(root)
    local = ResultStore(workdir.results)
    bundles = {"ct-verified": ("verified", "Ada <ada@example.org>", "b" * 64),
               "ct-self": ("self-reported", "Bob", "c" * 64)}
    shifts = {"imagenet": 0.3, "ct-local": 0.5, "ct-verified": 0.6, "ct-self": 0.9}
    for name, shift in shifts.items():
        domain = "natural" if name == "imagenet" else "ct"
        for task in TASKS:
            for scale in scales:
                for seed in (42, 1, 2):
                    value = 0.5 + shift / 2 + 0.01 * seed / 42 + (0.05 if task == "ct-task" else 0) - 0.1 * (1 - scale)
                    preds = predictions(shift + 0.01 * seed) if with_predictions else None
                    sub = submission(*bundles[name]) if name in bundles else None
                    store = local if sub is None else ResultStore(root / "ingested" / name / "results")
                    write(store, result(name, domain, task, seed, value, scale, sub, preds))
    return workdir
