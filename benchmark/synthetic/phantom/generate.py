"""Orchestration: render every patient, write the formats, publish atomically.

The dataset is built in a sibling temp directory and renamed into place only
when phantom.json (the completeness marker) is written, so an interrupted run
can never leave something that looks like a finished dataset; a killed run's
temp directory is swept (``benchmark.core.atomic.temp_folder``).
"""
from __future__ import annotations

import json
import os
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

from benchmark.core.atomic import publish_folder, temp_folder
from benchmark.synthetic.phantom.config import (
    BODY_PART,
    GENERATOR_VERSION,
    REGIONS,
    PhantomConfig,
    config_dict,
    dataset_key,
)
from benchmark.synthetic.phantom.dicom_writer import write_series
from benchmark.synthetic.phantom.nifti_writer import write_lits_case
from benchmark.synthetic.phantom.patient import Patient, make_patient
from benchmark.synthetic.phantom.render import render_series

_COHORT_DIRS = {"labelled": "dicom", "corpus": "corpus"}


def generate_dataset(out: Path, config: PhantomConfig = PhantomConfig(), *,  # noqa: B008 (frozen, immutable config)
                     workers: int | None = None) -> Path:
    """Writes the whole phantom dataset into `out` and returns it. Same config => same bytes.

    `workers` processes share the patients (default: the CPU count, at most 8);
    the bytes do not depend on it.
    """
    out = Path(out)
    with temp_folder(out) as tmp:
        manifest = _write_all(tmp, config, workers or min(os.cpu_count() or 1, 8))
        text = json.dumps(manifest, sort_keys=True, indent=1) + "\n"
        (tmp / "phantom.json").write_text(text, encoding="utf-8")
        publish_folder(tmp, out)
    return out


def _write_all(root: Path, config: PhantomConfig, workers: int) -> dict:
    jobs = [(root, config, cohort, index)
            for cohort, n in (("labelled", config.n_patients), ("corpus", config.n_corpus_patients),
                              ("lits", config.n_lits_volumes))
            for index in range(n)]
    if workers > 1 and len(jobs) > 1:
        with ProcessPoolExecutor(workers, mp_context=get_context("fork")) as pool:
            results = list(pool.map(_job, jobs, chunksize=2))
    else:
        results = [_job(job) for job in jobs]
    patients = [r for (_, _, cohort, _), r in zip(jobs, results) if cohort != "lits"]
    lits = [r for (_, _, cohort, _), r in zip(jobs, results) if cohort == "lits"]
    counts = {"lits_volumes": len(lits),
              "lits_volumes_with_lesions": sum(1 for case in lits if case["lesion_voxels"] > 0)}
    for cohort, prefix in (("labelled", "dicom"), ("corpus", "corpus")):
        members = [p for p in patients if p["cohort"] == cohort]
        counts[f"{prefix}_patients"] = len(members)
        counts[f"{prefix}_series"] = sum(len(p["series"]) for p in members)
        counts[f"{prefix}_files"] = sum(s["n_slices"] for p in members for s in p["series"])
    return {"generator_version": GENERATOR_VERSION, "config": config_dict(config),
            "patients": patients, "lits": lits, "counts": counts}


def _job(job: tuple[Path, PhantomConfig, str, int]) -> dict:
    root, config, cohort, index = job
    if cohort == "lits":
        return _write_lits(root / "lits", config, index)
    p = make_patient(config, cohort, index)
    return _write_patient(root / _COHORT_DIRS[cohort], p, config, dataset_key(config))


def _write_patient(base: Path, p: Patient, config: PhantomConfig, namespace: str) -> dict:
    series_entries = []
    for region in REGIONS:
        s = p.series[region]
        slices = render_series(p, s, config.matrix)
        directory = base / p.patient_id / BODY_PART[region]
        write_series(directory, slices, namespace)
        series_entries.append({
            "region": region, "body_part": BODY_PART[region], "anatomy": s.anatomy,
            "path": directory.relative_to(base.parent).as_posix(), "n_slices": s.n_slices,
            "slice_thickness_mm": s.thickness, "pixel_spacing_mm": round(slices[0].grid.spacing, 6),
            "fov_mm": round(s.fov, 6)})
    return _patient_entry(p) | {"series": series_entries}


def _patient_entry(p: Patient) -> dict:
    return {"patient_id": p.patient_id, "cohort": p.cohort, "phase": p.phase,
            "noise_sigma_hu": {s.anatomy: round(p.noise_sigma(s.anatomy), 4) for s in p.series.values()},
            "n_liver_lesions": len(p.lesions)}


def _write_lits(directory: Path, config: PhantomConfig, n: int) -> dict:
    p = make_patient(config, "lits", n)
    slices = render_series(p, p.series["abdomen"], config.matrix)
    case = write_lits_case(directory, n, slices)
    return _patient_entry(p) | case | {"spacing_mm": [round(slices[0].grid.spacing, 6)] * 2 + [p.series["abdomen"].thickness]}
