import shutil

import numpy as np
import pytest
from PIL import Image

import tasks.chestxray as chestxray
from benchmark.core.errors import DataError
from benchmark.evaluation.recipes import study_recipe
from tasks import tasks_of
from tests.fixtures.datasets.cross_domain import chestxray_findings, write_chestxray14

TASK = chestxray.TASK


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return write_chestxray14(tmp_path_factory.mktemp("cxr14"))


@pytest.fixture
def copy(dataset, tmp_path):
    return shutil.copytree(dataset, tmp_path / "cxr14")


def _edit(path, old, new):
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))


def test_spec_lists_the_nih_findings_in_their_published_order():
    spec = TASK.spec
    assert tasks_of(chestxray) == [TASK]
    assert (spec.domain, spec.kind, spec.main_metric) == ("xray", "multilabel", "auc")
    # README_CHESTXRAY.pdf / Wang et al. 2017, then the normal label.
    assert spec.class_names == ["Atelectasis", "Cardiomegaly", "Effusion", "Infiltration", "Mass", "Nodule",
                                "Pneumonia", "Pneumothorax", "Consolidation", "Edema", "Emphysema", "Fibrosis",
                                "Pleural_Thickening", "Hernia", "No Finding"]
    assert spec.training == study_recipe("chestxray8")


def test_reads_every_image_with_its_patient_labels_and_official_split(dataset):
    cases = list(TASK.cases(dataset))
    assert len(cases) == 36 and len({c.case_id for c in cases}) == 36
    assert {c.patient_id for c in cases} == {str(p) for p in range(1, 13)}
    splits = {c.meta["split"] for c in cases if c.patient_id == "1"}, {c.meta["split"] for c in cases
                                                                     if c.patient_id == "12"}
    assert splits == ({"train"}, {"test"})
    assert sum(c.meta["split"] == "test" for c in cases) == 9
    for k, case in enumerate(cases):  # cases come sorted by image name, which is the order written
        assert case.case_id == f"images/{k // 3 + 1:08d}_{k % 3:03d}.png"
        assert case.image.shape == (32, 32) and case.image.dtype == np.float32
        expected = [TASK.spec.class_names.index(f) for f in chestxray_findings(k)] or [14]
        assert np.flatnonzero(case.label).tolist() == sorted(expected)


def test_label_order_matches_the_csv_text(dataset):
    case = next(c for c in TASK.cases(dataset) if c.case_id.endswith("00000001_001.png"))
    assert "00000001_001.png,Cardiomegaly|Consolidation," in (dataset / "Data_Entry_2017.csv").read_text()
    assert case.label.tolist() == [0, 1, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0]
    normal = next(c for c in TASK.cases(dataset) if c.case_id.endswith("00000002_001.png"))
    assert normal.label.tolist() == [0] * 14 + [1]


def test_each_finding_leaves_a_visible_mark(dataset):
    cases = list(TASK.cases(dataset))
    for j in range(14):
        r, c = 1 + 8 * (j // 4), 1 + 8 * (j % 4)
        patch = np.array([case.image[r:r + 6, c:c + 6].mean() for case in cases])
        labels = np.array([case.label[j] for case in cases])
        assert patch[labels == 1].min() > patch[labels == 0].max()


def test_rgba_files_are_read_as_grayscale(dataset):
    path = dataset / "images" / "00000003_000.png"
    with Image.open(path) as image:
        assert image.mode == "RGBA"
        expected = np.asarray(image)[..., 0]
    np.testing.assert_array_equal(chestxray.read_gray(path), expected)


def test_the_split_archive_layout_reads_the_same(dataset, tmp_path):
    root = write_chestxray14(tmp_path, split_archives=True)
    assert (root / "images_002" / "images" / "00000001_001.png").is_file()
    split = {c.case_id.rsplit("/", 1)[1]: c for c in TASK.cases(root)}
    flat = {c.case_id.rsplit("/", 1)[1]: c for c in TASK.cases(dataset)}
    assert split.keys() == flat.keys()
    for name, case in flat.items():
        assert (split[name].label == case.label).all() and split[name].meta == case.meta


def test_validate_accepts_the_good_fixture(dataset):
    assert TASK.validate(dataset) == []


def test_validate_names_each_broken_image(copy):
    _edit(copy / "train_val_list.txt", "00000001_000.png\n", "")  # in neither list
    _edit(copy / "train_val_list.txt", "00000002_000.png\n", "00000002_000.png\n00000012_000.png\n")  # in both
    _edit(copy / "Data_Entry_2017.csv", "00000003_001.png,Pneumothorax|Emphysema,",
          "00000003_001.png,Pneumothorax|Pneumonitis,")
    (copy / "images" / "00000004_000.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    shutil.copy(copy / "images" / "00000005_000.png", copy / "images" / "00000099_000.png")
    Image.fromarray(np.zeros((32, 32), np.uint16)).save(copy / "images" / "00000006_000.png")

    problems = TASK.validate(copy)
    assert len(problems) == 6, problems
    expected = [("images/00000001_000.png", "is in neither split list"),
                ("images/00000012_000.png", "is in train_val_list.txt and test_list.txt"),
                ("Data_Entry_2017.csv", "line 9: unknown finding label(s) ['Pneumonitis']"),
                ("images/00000004_000.png", "not a readable image"),
                ("images/00000006_000.png", "expected 8-bit grayscale"),
                ("images/00000099_000.png", "is not listed in Data_Entry_2017.csv")]
    for name, message in expected:
        assert sum(name in line and message in line for line in problems) == 1, (name, problems)


def test_cases_raises_on_the_first_problem(copy):
    _edit(copy / "train_val_list.txt", "00000001_000.png\n", "")
    with pytest.raises(DataError, match="00000001_000.png: is in neither split list"):
        list(TASK.cases(copy))


def test_an_image_the_csv_lists_but_the_folders_lack_is_refused(copy):
    (copy / "images" / "00000007_002.png").unlink()
    [problem] = TASK.validate(copy)
    assert "1 image(s) listed in Data_Entry_2017.csv are not in the image folders, e.g. 00000007_002.png" in problem


@pytest.mark.parametrize("name", ["Data_Entry_2017.csv", "test_list.txt"])
def test_a_missing_index_file_is_one_problem(copy, name):
    (copy / name).unlink()
    [problem] = TASK.validate(copy)
    assert problem.startswith(str(copy)) and name in problem


def test_the_2020_re_release_of_the_csv_is_accepted(copy):
    (copy / "Data_Entry_2017.csv").rename(copy / "Data_Entry_2017_v2020.csv")
    assert TASK.validate(copy) == []


def test_no_finding_with_a_finding_is_contradictory(copy):
    _edit(copy / "Data_Entry_2017.csv", "00000002_001.png,No Finding,", "00000002_001.png,No Finding|Mass,")
    [problem] = TASK.validate(copy)
    assert "Data_Entry_2017.csv: line 6: 'No Finding' together with findings" in problem
