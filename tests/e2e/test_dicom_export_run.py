"""`ctbench run` on CT as hospitals export it (issue 21): a scanner export tree with labels.csv keyed
by PatientID runs `dicom-folder` end to end, reads one series per patient (the one the default
rule picks) and records that choice, and every series it skipped with why, in the result.

The tree is ``tests/fixtures/datasets/dicom_export.py``'s, for six patients (three per class: a
split needs at least 3 patients, and one test patient leaves train and validation patients of both
classes). Per patient: thin 1 mm B70f and B30f series with the same number of slices, a thick 5 mm
B30f one, a localizer and a dose report. The default rule (most slices at most 5 mm, ties to a
soft-tissue kernel) must pick the thin B30f series, although the B70f one has the lower UID.
"""
import json
from pathlib import Path

import numpy as np
import pytest

import tests.fixtures.datasets.dicom_export as export
from tests.cli_helpers import run_cli

TASK = "dicom-folder"
PATIENTS = {"P1": "a", "P2": "b", "P3": "a", "P4": "b", "P5": "a", "P6": "b"}
CHOSEN = "Abdomen 1.0 B30f"  # what the default rule must pick for every patient
SKIPPED = {"Abdomen 1.0 B70f": "kernel B70f is sharp (bone or lung)", "Abdomen 5.0 B30f": "2 slices, fewer than",
           "Topogram": "localizer: ImageType LOCALIZER", "Dose Report": "non-image: an X-Ray Radiation Dose SR"}


@pytest.fixture(scope="module")
def export_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("export")
    with pytest.MonkeyPatch.context() as patch:  # the fixture knows two patients' slice counts; four more
        for patient in PATIENTS:
            if patient not in export.THIN_SLICES:
                patch.setitem(export.THIN_SLICES, patient, 4)
        thin = {p: export.THIN_SLICES[p] for p in PATIENTS}
        tree = export.write_export(root / "tree", patients=tuple(PATIENTS))
    (tree / "labels.csv").write_text("PatientID,label\n" + "".join(f"{p},{label}\n" for p, label in PATIENTS.items()))
    workdir = root / "work"
    proc = run_cli("run", "--tasks", TASK, "--data", f"{TASK}={tree}", "--protocols", "linear", "--scales", "1",
                   "--seeds", "42", "--checkpoints", "random", "--workdir", str(workdir), "--device", "cpu",
                   "--analysis-task", "none", check=False)
    return proc, tree, workdir, thin


def _result(workdir: Path) -> tuple[dict, Path]:
    [path] = sorted((workdir / "results").rglob("*.json"))
    return json.loads(path.read_text()), path


def test_the_run_exits_0_and_reads_exactly_the_chosen_series(export_run):
    proc, _, workdir, thin = export_run
    assert proc.returncode == 0, proc.stderr
    result, _ = _result(workdir)
    assert result["job"]["task"] == TASK and result["task"]["class_names"] == ["a", "b"]
    counts = result["counts"]
    assert counts["train_cases"] + counts["val_cases"] + counts["test_cases"] == sum(thin.values())
    assert counts["train_patients"] + counts["val_patients"] + counts["test_patients"] == len(PATIENTS)


def test_the_result_records_the_series_chosen_per_patient_by_the_default_rule(export_run):
    _, _, workdir, thin = export_run
    selection = _result(workdir)[0]["provenance"]["data_selection"]["dicom_series_selection"]
    assert selection["key_column"] == "PatientID"
    assert selection["rule"] == {"description": None, "kernel": None, "max_thickness_mm": 5.0}
    chosen = {c["key"]: c for c in selection["chosen"]}
    assert sorted(chosen) == sorted(PATIENTS)
    for patient, label in PATIENTS.items():
        pick = chosen[patient]
        assert pick["series"] == export.series_uid(patient, CHOSEN)
        assert (pick["label"], pick["description"], pick["kernel"]) == (label, CHOSEN, "B30f")
        assert pick["slices"] == thin[patient] and pick["thickness_mm"] == 1.0
        assert pick["why"].startswith("the most slices at most 5 mm thick")


def test_the_result_lists_every_skipped_series_with_its_reason(export_run):
    _, _, workdir, _ = export_run
    selection = _result(workdir)[0]["provenance"]["data_selection"]["dicom_series_selection"]
    skipped = {(s["patient"], s["description"]): s for s in selection["skipped"]}
    assert len(skipped) == len(selection["skipped"]) == len(PATIENTS) * len(SKIPPED)
    chosen_uids = {c["series"] for c in selection["chosen"]}
    for patient in PATIENTS:
        for description, reason in SKIPPED.items():
            entry = skipped[(patient, description)]
            assert reason in entry["reason"] and entry["series"] not in chosen_uids
        assert export.series_uid(patient, CHOSEN) in skipped[(patient, "Abdomen 1.0 B70f")]["reason"]


def test_the_test_predictions_are_slices_of_the_chosen_series_with_the_patient_label(export_run):
    _, tree, workdir, _ = export_run
    result, path = _result(workdir)
    predictions = np.load(path.parent / result["predictions_file"], allow_pickle=False)
    assert len(predictions["case_ids"]) == result["counts"]["test_cases"] > 0
    classes = result["task"]["class_names"]
    chosen_folder = f"SE{list(export.SERIES).index(CHOSEN) + 2:03d}"  # write_export numbers series from SE002
    for case_id, patient, truth in zip(predictions["case_ids"], predictions["patient_ids"], predictions["y_true"]):
        assert case_id.startswith(f"{patient}/STUDY1/{chosen_folder}/") and (tree / case_id).is_file()
        assert classes[truth] == PATIENTS[str(patient)]
