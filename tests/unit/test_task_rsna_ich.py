import shutil

import numpy as np
import pydicom
import pytest

import tasks.rsna_ich as rsna
from benchmark.core.errors import DataError
from benchmark.data.readers.dicom import read_ct_slice
from tasks import tasks_of
from tests.fixtures.datasets.cross_domain import (
    rsna_hu,
    rsna_image_id,
    rsna_patient_id,
    rsna_storage,
    rsna_subtypes,
    write_rsna_ich,
)

TASK = rsna.TASK
SLICES = {rsna_image_id(p, s): (p, s) for p in range(10) for s in range(4)}


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return write_rsna_ich(tmp_path_factory.mktemp("rsna"))


@pytest.fixture
def copy(dataset, tmp_path):
    return shutil.copytree(dataset, tmp_path / "rsna")


def _dcm(root, p, s):
    return root / "stage_2_train" / f"{rsna_image_id(p, s)}.dcm"


def _csv_lines(root):
    return (root / "stage_2_train.csv").read_text().splitlines()


def _write_csv(root, lines):
    (root / "stage_2_train.csv").write_text("\n".join(lines) + "\n")


def test_spec_is_the_competitions_six_labels_with_brain_subdural_bone_windows():
    spec = TASK.spec
    assert tasks_of(rsna) == [TASK]
    assert (spec.domain, spec.kind, spec.main_metric) == ("ct", "multilabel", "auc")
    assert spec.class_names == ["epidural", "intraparenchymal", "intraventricular", "subarachnoid", "subdural", "any"]
    assert [(w.center, w.width) for w in spec.preprocessing.windows] == [(40, 80), (80, 200), (600, 2800)]


def test_reads_every_slice_grouped_by_the_dicom_patient(dataset):
    cases = list(TASK.cases(dataset))
    assert len(cases) == 40 and len({c.case_id for c in cases}) == 40
    assert {c.patient_id for c in cases} == {rsna_patient_id(p) for p in range(10)}  # not the image ids
    for case in cases:
        p, s = SLICES[case.case_id.split("/")[1][:-4]]
        assert case.patient_id == rsna_patient_id(p)
        present = rsna_subtypes(p, s)
        expected = [int(t in present) for t in TASK.spec.class_names[:5]]
        assert case.label.tolist() == [*expected, int(any(expected))]
        assert case.meta["spacing"] == (0.488281, 0.488281)


def test_every_storage_form_gives_the_true_hounsfield_units(dataset):
    forms = set()
    for case in TASK.cases(dataset):
        p, s = SLICES[case.case_id.split("/")[1][:-4]]
        np.testing.assert_array_equal(case.image, rsna_hu(p, s))
        forms.add(rsna_storage(p, s))
    assert forms == {"signed16", "unsigned12", "corrupted"}


def test_the_mis_stored_slices_are_corrected_and_only_they(dataset):
    corrupted = next((p, s) for p, s in SLICES.values() if rsna_storage(p, s) == "corrupted")
    naive, ds = read_ct_slice(_dcm(dataset, *corrupted))
    assert (ds.BitsStored, ds.PixelRepresentation, float(ds.RescaleIntercept)) == (12, 0, 1.0)
    assert naive[0, 0] == 3097  # air read naively looks like dense bone
    hu, _ = rsna.read_rsna_slice(_dcm(dataset, *corrupted))
    assert hu[0, 0] == -1000 and hu.max() == 1000 and rsna.needs_correction(ds)
    unsigned = next((p, s) for p, s in SLICES.values() if rsna_storage(p, s) == "unsigned12")
    _, ds = read_ct_slice(_dcm(dataset, *unsigned))
    assert ds.BitsStored == 12 and ds.PixelRepresentation == 0 and not rsna.needs_correction(ds)


def test_blood_is_visible_in_the_brain_window(dataset):
    low, high = TASK.spec.preprocessing.windows[0].bounds
    for case in TASK.cases(dataset):
        blood = (case.image > 60) & (case.image < 100)
        assert blood.any() == bool(case.label[5])
        assert low < np.median(case.image[blood]) < high if blood.any() else True


def test_validate_accepts_the_good_fixture_with_its_repeated_rows(dataset):
    lines = _csv_lines(dataset)
    assert len(lines) == 1 + 6 * 40 + 6 and len(set(lines)) == 1 + 6 * 40
    assert TASK.validate(dataset) == []


def test_validate_names_each_broken_file(copy):
    shutil.copy(_dcm(copy, 0, 0), copy / "stage_2_train" / "ID_000000000.dcm")  # not in the CSV
    ds = pydicom.dcmread(_dcm(copy, 2, 1))
    ds.Modality = "MR"
    ds.save_as(_dcm(copy, 2, 1))
    _dcm(copy, 3, 1).write_bytes(_dcm(copy, 3, 1).read_bytes()[:-500])  # pixel data cut short
    _write_csv(copy, [line for line in _csv_lines(copy) if line != f"{rsna_image_id(4, 1)}_subdural,0"
                      and line != f"{rsna_image_id(4, 1)}_subdural,1"])

    problems = TASK.validate(copy)
    assert len(problems) == 4, problems
    expected = [("ID_000000000.dcm", "image id ID_000000000 has no rows in stage_2_train.csv"),
                (f"{rsna_image_id(2, 1)}.dcm", "modality is 'MR', expected 'CT'"),
                (f"{rsna_image_id(3, 1)}.dcm", "cannot decode pixel data"),
                ("stage_2_train.csv", f"image id {rsna_image_id(4, 1)} has no row for ['subdural']")]
    for name, message in expected:
        assert sum(name in line and message in line for line in problems) == 1, (name, problems)


def test_a_csv_id_without_its_file_is_refused(copy):
    _dcm(copy, 5, 3).unlink()
    [problem] = TASK.validate(copy)
    assert "stage_2_train.csv" in problem
    assert f"1 image id(s) in stage_2_train.csv have no file in stage_2_train/, e.g. {rsna_image_id(5, 3)}" in problem


def test_cases_raises_on_the_first_problem(copy):
    first = sorted((copy / "stage_2_train").glob("*.dcm"))[0]
    first.write_bytes(b"not dicom")
    with pytest.raises(DataError, match=f"{first.name}: not a readable DICOM file"):
        list(TASK.cases(copy))


def test_conflicting_repeats_and_unknown_subtypes_in_the_csv_are_refused(copy):
    lines = _csv_lines(copy)
    _write_csv(copy, [*lines, lines[1][:-1] + ("1" if lines[1].endswith("0") else "0")])
    [problem] = TASK.validate(copy)
    assert "stage_2_train.csv: line 2: ID " in problem and "more than once with different labels" in problem
    lines[3] = lines[3].replace("intraventricular", "intraventricula")
    _write_csv(copy, lines)
    [problem] = TASK.validate(copy)
    assert "stage_2_train.csv: line 4: ID " in problem and "known subtype" in problem


def test_the_known_undecodable_slice_is_left_out_by_name(copy):
    (copy / "stage_2_train" / "ID_6431af929.dcm").write_bytes(b"\0" * 128 + b"DICM" + b"\xff" * 64)
    _write_csv(copy, [*_csv_lines(copy), *[f"ID_6431af929_{t},0" for t in rsna.SUBTYPES]])
    assert TASK.validate(copy) == []
    assert len(list(TASK.cases(copy))) == 40


def test_a_folder_without_the_label_file_is_one_problem(copy):
    (copy / "stage_2_train.csv").unlink()
    assert TASK.validate(copy) == [f"{copy}: has no stage_2_train.csv (the label file)"]
