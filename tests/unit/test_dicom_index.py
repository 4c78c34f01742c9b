"""The series index of a DICOM export tree, and the dicom-folder task reading one series per
labelled patient, study or series of it: on pydicom's own DICOMDIR test files, and on an export
written here with the reconstructions, localizer and dose report a real study holds."""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from benchmark.cli.main import main
from benchmark.core.errors import DataError
from benchmark.data.readers import dicom_index
from benchmark.data.readers.dicom_index import index_tree
from benchmark.data.series_selection import kernel_rank
from benchmark.results.schema import Provenance
from tasks.generic import DicomFolder
from tests.fixtures.datasets.dicom_ct import dicom_uid, write_ct_slice
from tests.fixtures.datasets.dicom_enhanced import phantom_volume, write_enhanced_ct, write_single_frame_series
from tests.fixtures.datasets.dicom_export import THIN_SLICES, series_uid, write_export
from tests.fixtures.pydicom_testdata import pydicom_testdata

PYDICOM_PATIENT = "98890234"  # the PatientID of the files in pydicom's dicomdirtests/98892001
SCOUT_UID = "1.3.6.1.4.1.5962.1.1.0.0.0.1194734704.16302.0.2"
AXIAL_UID = "1.3.6.1.4.1.5962.1.1.0.0.0.1194734704.16302.0.6"


@pytest.fixture
def pydicom_tree(tmp_path) -> Path:
    """A copy of pydicom's dicomdirtests (DICOMDIR and the files it names), or a clean skip."""
    return Path(shutil.copytree(pydicom_testdata("DICOMDIR").parent, tmp_path / "dicomdirtests"))


@pytest.fixture
def export(tmp_path) -> Path:
    root = write_export(tmp_path / "export")
    _labels(root, "PatientID", {"P1": "a", "P2": "b"})
    return root


def _labels(root: Path, column: str, labels: dict[str, str]) -> None:
    (root / "labels.csv").write_text(f"{column},label\n" + "".join(f"{k},{v}\n" for k, v in labels.items()))


def _by_description(root: Path, patient: str = "P1") -> dict[str, dict]:
    return {row["description"]: row for row in index_tree(root)["series"] if row["patient"] == patient}


def _chosen(root: Path) -> dict[str, str]:
    return {c["key"]: c["series"] for c in DicomFolder().bind(root).provenance(root)["dicom_series_selection"]["chosen"]}


# --------------------------------------------------------------------------- pydicom's real files


def test_the_pydicom_tree_is_read_through_its_dicomdir(pydicom_tree):
    index = index_tree(pydicom_tree)
    assert index["source"] == "DICOMDIR" and index["problems"] == []
    classes = {row["series"]: row["class"] for row in index["series"]}
    assert len(classes) == 13 and classes[AXIAL_UID] == "axial-ct" and classes[SCOUT_UID] == "localizer"
    brain = next(row for row in index["series"] if row["description"] == "Routine Brain")
    assert brain["class"] == "irregular" and "uneven" in brain["why"]  # z -99.5, then 103.0 ... 105.5
    assert {row["class"] for row in index["series"] if row["modality"] in ("MR", "CR")} == {"other-modality"}
    assert "not named by its DICOMDIR" in index["notes"][0]  # the DICOMDIR-* variants beside it


@pytest.mark.filterwarnings("ignore:End of file reached:UserWarning")  # pydicom, on the broken DICOMDIR
def test_a_dicomdir_naming_an_absent_file_says_so_and_a_broken_one_is_walked_around(pydicom_tree, export):
    (pydicom_tree / "98892001" / "CT2N" / "6293").unlink()
    index = index_tree(pydicom_tree)
    assert index["problems"] == [f"{pydicom_tree / '98892001' / 'CT2N' / '6293'}: named by the DICOMDIR but absent"]
    (export / "DICOMDIR").write_bytes(b"\0" * 128 + b"DICM" + b"\xff" * 40)
    index = index_tree(export)
    assert (index["source"], len(index["series"]), index["problems"]) == ("walk", 10, [])
    assert "not a readable DICOMDIR" in index["notes"][0]


def test_patient_98892001_holds_one_axial_series_and_one_localizer(pydicom_tree):
    index = index_tree(pydicom_tree / "98892001")
    assert index["source"] == "walk" and index["problems"] == []
    rows = {row["class"]: row for row in index["series"]}
    assert set(rows) == {"axial-ct", "localizer"}
    axial, scout = rows["axial-ct"], rows["localizer"]
    assert (axial["series"], axial["slices"], axial["spacing_mm"], axial["normal"]) == (AXIAL_UID, 5, 2.5, [0, 0, 1])
    assert (scout["series"], scout["slices"], scout["orientation"]) == (SCOUT_UID, 2, "mixed")


@pytest.mark.parametrize("subtree", ["98892001", "."], ids=["walked", "dicomdir"])
def test_dicom_folder_keyed_by_patient_reads_the_axial_series(pydicom_tree, subtree):
    root = pydicom_tree / subtree
    _labels(root, "PatientID", {PYDICOM_PATIENT: "calcium-score"})
    assert DicomFolder().validate(root) == []
    assert _chosen(root) == {PYDICOM_PATIENT: AXIAL_UID}
    cases = list(DicomFolder().bind(root).cases(root))
    prefix = "" if subtree != "." else "98892001/"
    # sorted along the normal (z up), not by file name (the files run from the top down)
    assert [c.case_id for c in cases] == [f"{prefix}CT5N/{n}" for n in ("3353", "3023", "2693", "2392", "2062")]
    assert {c.patient_id for c in cases} == {PYDICOM_PATIENT}


# --------------------------------------------------------------------------- an export written here


def test_each_series_of_an_export_gets_its_class(export):
    rows = _by_description(export)
    assert {d: r["class"] for d, r in rows.items()} == {
        "Abdomen 1.0 B70f": "axial-ct", "Abdomen 1.0 B30f": "axial-ct", "Abdomen 5.0 B30f": "axial-ct",
        "Topogram": "localizer", "Dose Report": "non-image"}
    assert "Dose SR" in rows["Dose Report"]["why"] and "LOCALIZER" in rows["Topogram"]["why"]
    thin, thick = rows["Abdomen 1.0 B30f"], rows["Abdomen 5.0 B30f"]
    assert (thin["slices"], thin["spacing_mm"], thin["thickness_mm"], thin["kernel"]) == (10, 1.0, 1.0, "B30f")
    assert (thick["shape"], thick["spacing_mm"]) == ([2, 8, 8], 5.0)


def test_the_default_rule_picks_the_thin_soft_kernel_series(export):
    assert _chosen(export) == {"P1": series_uid("P1", "Abdomen 1.0 B30f"), "P2": series_uid("P2", "Abdomen 1.0 B30f")}
    task = DicomFolder().bind(export)
    cases = list(task.cases(export))
    assert len(cases) == sum(THIN_SLICES.values())
    assert {c.patient_id for c in cases} == {"P1", "P2"} and {c.label for c in cases if c.patient_id == "P2"} == {1}
    assert [c.case_id for c in cases][:2] == ["P1/STUDY1/SE003/IM000001", "P1/STUDY1/SE003/IM000002"]


@pytest.mark.parametrize("rule, description", [
    ({"kernel": "B70f"}, "Abdomen 1.0 B70f"),
    ({"description": r"5\.0"}, "Abdomen 5.0 B30f"),
    ({"description": "abdomen", "kernel": "^B3", "max_thickness_mm": 5}, "Abdomen 1.0 B30f"),
])
def test_a_selection_rule_changes_the_pick(export, rule, description):
    (export / "selection.json").write_text(json.dumps(rule))
    assert _chosen(export)["P1"] == series_uid("P1", description)


def test_a_rule_no_series_fits_is_a_problem_naming_the_patient(export):
    (export / "selection.json").write_text(json.dumps({"max_thickness_mm": 0.5}))
    problems = DicomFolder().validate(export)
    assert len(problems) == 2 and "PatientID P1" in problems[0] and "over the maximum of 0.5 mm" in problems[0]
    with pytest.raises(DataError, match="no series of PatientID P1 fits"):
        DicomFolder().bind(export).units(export)


@pytest.mark.parametrize("config, what", [
    ({"kernal": "B30f"}, "kernal"), ({"kernel": "B3[0"}, "not a regular expression"),
    ({"max_thickness_mm": "5"}, "positive number"), ("[]", "must be an object"),
])
def test_a_bad_selection_file_is_refused_by_name(export, config, what):
    (export / "selection.json").write_text(config if isinstance(config, str) else json.dumps(config))
    [problem] = DicomFolder().validate(export)
    assert problem.startswith(str(export / "selection.json")) and what in problem


def test_series_and_study_keys(export):
    uid = series_uid("P2", "Abdomen 5.0 B30f")
    _labels(export, "SeriesInstanceUID", {uid: "thick"})
    assert _chosen(export) == {uid: uid} and len(list(DicomFolder().bind(export).cases(export))) == 2
    _labels(export, "StudyInstanceUID", {str(dicom_uid("study", "P1")): "a"})
    assert _chosen(export) == {str(dicom_uid("study", "P1")): series_uid("P1", "Abdomen 1.0 B30f")}
    localizer = str(dicom_uid("localizer", "P1"))
    _labels(export, "SeriesInstanceUID", {localizer: "scout", "1.2.3.4": "gone"})
    problems = DicomFolder().validate(export)
    assert any(f"{localizer} is localizer" in p for p in problems) and any("1.2.3.4 is held by no series" in p
                                                                           for p in problems)


def test_validate_lists_every_skipped_series_and_exits_0(export, capsys):
    assert main(["tasks", "validate", "dicom-folder", "--data", str(export)]) == 0
    captured = capsys.readouterr()
    assert captured.out == ""
    skipped = [line for line in captured.err.splitlines() if line.startswith("note: skipped series")]
    assert len(skipped) == 8  # per patient: localizer, dose SR, the bone twin, the thick one
    assert any(series_uid("P1", "Abdomen 1.0 B70f") in s and "sharp" in s for s in skipped)
    assert any(series_uid("P1", "Abdomen 5.0 B30f") in s and "fewer than the 10" in s for s in skipped)
    assert any("Dose Report" in s and "not an image" in s for s in skipped)
    assert captured.err.splitlines()[-1].startswith("ok: ")


def test_the_choice_is_recorded_in_a_results_provenance(export):
    record = DicomFolder().bind(export).provenance(export)["dicom_series_selection"]
    assert record["rule"] == {"description": None, "kernel": None, "max_thickness_mm": 5.0}
    assert {c["key"] for c in record["chosen"]} == {"P1", "P2"} and len(record["skipped"]) == 8
    assert Provenance.model_validate({"data_selection": {"dicom_series_selection": record}}).data_selection
    _labels(export, "series", {"P1/STUDY1/SE003": "a"})  # the folder layout records nothing extra
    assert DicomFolder().provenance(export) == {}


def test_enhanced_ct_frames_are_the_cases_of_their_series(tmp_path):
    files = write_single_frame_series(tmp_path / "single", phantom_volume(4), [15.0, 0.0, 10.0, 5.0])
    root = tmp_path / "tree"
    write_enhanced_ct(root / "TWIN" / "CT" / "enhanced.dcm", files)
    _labels(root, "PatientID", {"TWIN": "a"})
    [row] = index_tree(root)["series"]
    assert (row["class"], row["slices"], row["files"], row["spacing_mm"]) == ("axial-ct", 4, 1, 5.0)
    cases = list(DicomFolder().bind(root).cases(root))
    assert [c.case_id for c in cases] == [f"TWIN/CT/enhanced.dcm#{k}" for k in (1, 3, 2, 0)]  # z 0, 5, 10, 15
    assert [float(c.image[25, 7]) for c in cases] == [41.0, 43.0, 42.0, 40.0]  # each frame's own slice


@pytest.mark.parametrize("bend, cls, why", [
    (lambda ds: None, "localizer", "single slice"),
    (lambda ds: setattr(ds, "ImageOrientationPatient", ["1", "0", "0", "0", "0", "-1"]), "localizer", "coronal"),
    (lambda ds: setattr(ds, "ImageType", ["DERIVED", "SECONDARY", "MPR"]), "derived", "DERIVED"),
    (lambda ds: setattr(ds, "SOPClassUID", "1.2.840.10008.5.1.4.1.1.7"), "derived", "Secondary Capture"),
    (lambda ds: setattr(ds, "Modality", "MR"), "other-modality", "MR"),
    (lambda ds: delattr(ds, "ImagePositionPatient"), "irregular", "ImagePositionPatient"),
])
def test_classes_a_header_decides(tmp_path, bend, cls, why):
    from tests.fixtures.datasets.dicom_ct import ct_slice

    ds = ct_slice(np.zeros((8, 8)))
    bend(ds)
    ds.save_as(tmp_path / "one.dcm", enforce_file_format=True)
    [row] = index_tree(tmp_path)["series"]
    assert row["class"] == cls and why in row["why"]


def test_kernels_rank_soft_over_unknown_over_sharp():
    assert [kernel_rank(k) for k in ("STANDARD", "B30f", "Br40\\3", "FC03", "XYZ", None, "BONE", "B70f", "LUNG")] == \
        [0, 0, 0, 0, 1, 1, 2, 2, 2]


# --------------------------------------------------------------------------- the command, its cache, broken files


def _index_cli(capsys, root: Path, workdir: Path) -> tuple[int, dict, str]:
    code = main(["data", "index", str(root), "--json", "--workdir", str(workdir)])
    captured = capsys.readouterr()
    return code, json.loads(captured.out), captured.err


def test_data_index_prints_json_and_a_table(export, tmp_path, capsys):
    code, index, err = _index_cli(capsys, export, tmp_path / "work")
    assert code == 0 and len(index["series"]) == 10 and "instances" not in index["series"][0]
    assert "10 series" in err
    assert main(["data", "index", str(export), "--workdir", str(tmp_path / "work")]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].split()[:3] == ["patient", "study", "series"] and len(table) == 11
    assert any("non-image" in line and "Dose Report" in line for line in table)


def test_the_cache_spares_a_second_header_pass_until_a_file_changes(export, tmp_path, capsys, monkeypatch):
    reads = []
    real = dicom_index.read_header
    monkeypatch.setattr(dicom_index, "read_header", lambda path: reads.append(path) or real(path))
    workdir = tmp_path / "work"
    first = _index_cli(capsys, export, workdir)[1]
    assert len(reads) == 42 and list((workdir / "cache" / "dicom-index").glob("*.json"))
    reads.clear()
    assert _index_cli(capsys, export, workdir)[1] == first and reads == []
    touched = next(export.rglob("IM000001"))
    os.utime(touched, ns=(touched.stat().st_atime_ns, touched.stat().st_mtime_ns + 10**9))
    _index_cli(capsys, export, workdir)
    assert len(reads) == 42


def test_an_unreadable_file_is_named_and_the_rest_indexed(export, tmp_path, capsys):
    junk = export / "P1" / "STUDY1" / "SE002" / "junk.dcm"
    junk.write_bytes(b"not dicom" * 20)
    code, index, err = _index_cli(capsys, export, tmp_path / "work")
    assert code == 0 and len(index["series"]) == 10
    assert index["problems"] == [next(line for line in err.splitlines() if line.startswith(str(junk)))]
    [problem] = DicomFolder().validate(export)  # a run cannot know which series it belonged to: a problem
    assert problem.startswith(f"{junk}: not a readable DICOM file")
    alone = tmp_path / "alone"
    write_ct_slice(alone / "fine.dcm", np.zeros((8, 8)))
    (alone / "fine.dcm").write_bytes((alone / "fine.dcm").read_bytes()[:200])
    code, index, err = _index_cli(capsys, alone, tmp_path / "work")
    assert code == 2 and index["series"] == [] and str(alone / "fine.dcm") in err
