"""The task plugin API: units and validation, include paths, generic tasks, official splits,
the memory-mapped slice cache, spacing and 2.5-D preprocessing."""
import csv
import shutil

import nibabel as nib
import numpy as np
import pytest
from PIL import Image

from benchmark.catalog.registries import set_include_paths, task_registry
from benchmark.core.errors import DataError, RegistryError
from benchmark.core.specs import Preprocessing
from benchmark.data.readers.volume import axial_image
from benchmark.data.slices import load_slices, read_cache
from benchmark.data.split_verify import verify
from benchmark.data.splits import make_budget, make_split
from benchmark.data.transforms import mask_transform, slice_transform
from tasks.generic import DicomFolder, ImageFolder, NiftiFolder
from tasks.phantom_region import TASK as BODY_REGION

PLUGIN = '''
from benchmark.api import TaskSpec
from benchmark.api import Case, Task
import numpy as np

class Squares(Task):
    spec = TaskSpec(name="{name}", version="1", domain="ct", kind="classification", class_names=["a", "b"],
                    metrics=["accuracy"], main_metric="accuracy")
    def cases(self, root):
        for i in range(12):
            yield Case(f"c{{i}}", f"p{{i}}", np.full((8, 8), float(i % 2)), i % 2)

TASK = Squares()
'''


@pytest.fixture
def include(tmp_path):
    yield tmp_path / "plugins"
    set_include_paths([])


def test_an_include_path_adds_tasks_and_names_their_file(include):
    include.mkdir()
    (include / "squares.py").write_text(PLUGIN.format(name="squares"))
    (include / "_helper.py").write_text("raise RuntimeError('private modules are not loaded')")
    set_include_paths([include])
    entry = task_registry().entry("squares")
    assert entry.source == f"include path {include / 'squares.py'}"
    assert entry.obj.validate(include) == []


def test_a_clashing_or_broken_plugin_is_named(include):
    include.mkdir()
    (include / "clash.py").write_text(PLUGIN.format(name="phantom-body-region"))
    set_include_paths([include])
    with pytest.raises(RegistryError, match=r"duplicate task name 'phantom-body-region'.*clash\.py"):
        task_registry()
    (include / "clash.py").write_text("import nonexistent_module_xyz")
    set_include_paths([include])
    with pytest.raises(RegistryError, match=r"cannot load task plugin .*clash\.py: ModuleNotFoundError"):
        task_registry()


def test_validate_reports_every_broken_file_on_its_own_line(tiny_phantom, tmp_path):
    root = tmp_path / "dicom"
    shutil.copytree(tiny_phantom / "dicom", root)
    files = sorted(root.rglob("*.dcm"))
    files[0].write_bytes(b"not a dicom file at all" * 10)
    import pydicom

    ds = pydicom.dcmread(files[5])
    ds.Modality = "MR"
    ds.save_as(files[5])
    problems = BODY_REGION.validate(root)
    assert len(problems) == 2
    assert str(files[0]) in problems[0] and "not a readable DICOM" in problems[0]
    assert str(files[5]) in problems[1] and "modality is 'MR'" in problems[1]
    assert BODY_REGION.validate(tiny_phantom / "dicom") == []


def test_dicom_folder_takes_its_classes_and_labels_from_the_csv(tiny_phantom, tmp_path):
    root = tmp_path / "mine"
    series = sorted(p for p in (tiny_phantom / "dicom").glob("*/*") if p.name in ("CHEST", "HEADNECK"))
    rows = []
    for folder in series:
        target = root / folder.relative_to(tiny_phantom / "dicom")
        shutil.copytree(folder, target)
        rows.append((target.relative_to(root).as_posix(), "head" if folder.name == "HEADNECK" else "chest"))
    with open(root / "labels.csv", "w", newline="") as handle:
        csv.writer(handle).writerows([("series", "label"), *rows])
    task = DicomFolder().bind(root)
    assert task.spec.class_names == ["chest", "head"]
    cases = list(task.cases(root))
    assert len(cases) == sum(len(list(f.glob("*.dcm"))) for f in series)
    assert {c.label for c in cases if "HEADNECK" in c.case_id} == {1}
    assert DicomFolder().validate(root) == []
    first = next(root.glob("*/CHEST"))
    shutil.copy(sorted(first.glob("*.dcm"))[0], first / "duplicate.dcm")  # same position twice
    assert [p for p in DicomFolder().validate(root) if "slice gaps are inconsistent" in p and str(first) in p]
    (root / "labels.csv").write_text("series,label\nnope/SERIES,chest\n")
    assert "is not a folder" in DicomFolder().validate(root)[0]


def _volume(path, array, spacing=(0.8, 0.8, 2.0)):
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(array, np.diag([*spacing, 1.0])), path)


def test_nifti_folder_reads_pairs_and_names_a_missing_mask(tmp_path):
    rng = np.random.default_rng(0)
    for i in range(3):
        mask = np.zeros((16, 16, 4), np.uint8)
        mask[4:10, 5:12, 1:3] = 1
        _volume(tmp_path / "images" / f"case{i}.nii.gz", (rng.normal(0, 5, (16, 16, 4)) + 50 * mask).astype(np.float32))
        _volume(tmp_path / "masks" / f"case{i}.nii.gz", mask)
    task = NiftiFolder().bind(tmp_path)
    cases = list(task.cases(tmp_path))
    assert len(cases) == 3 * 2 and {c.patient_id for c in cases} == {"case0", "case1", "case2"}
    assert cases[0].image.shape == cases[0].label.shape == (16, 16)
    assert cases[0].meta["spacing"] == pytest.approx((0.8, 0.8))
    assert NiftiFolder().validate(tmp_path) == []
    (tmp_path / "masks" / "case1.nii.gz").unlink()
    problems = NiftiFolder().validate(tmp_path)
    assert problems == [f"{tmp_path / 'images' / 'case1.nii.gz'}: has no mask masks/case1.nii.gz"]


def test_image_folder_in_imagenet_layout_uses_val_as_the_official_test_set(tmp_path):
    for split in ("train", "val"):
        for name in ("cat", "dog"):
            for k in range(3):
                (tmp_path / split / name).mkdir(parents=True, exist_ok=True)
                Image.new("RGB", (8, 8), (k * 40, 0, 0)).save(tmp_path / split / name / f"{k}.png")
    task = ImageFolder().bind(tmp_path)
    assert task.spec.class_names == ["cat", "dog"]
    cases = list(task.cases(tmp_path))
    assert {c.meta["split"] for c in cases if c.case_id.startswith("val/")} == {"test"}
    assert sum(c.meta["split"] == "train" for c in cases) == 6


def test_official_splits_become_the_test_set_and_a_leak_is_refused(tmp_path):
    patients = np.array(["a", "a", "b", "c", "d", "e"])
    labels = np.array([0, 0, 1, 0, 1, 1])
    official = np.array(["train", "train", "val", "test", "test", "train"])
    split = make_split("t", "1", "f" * 64, patients, labels, tmp_path / "split.json", official)
    assert split.payload["test_patients"] == ["c", "d"] and split.payload["official_split"] is True
    leaking = np.array(["train", "test", "val", "test", "test", "train"])
    with pytest.raises(DataError, match="patient a is in official splits"):
        make_split("t", "1", "f" * 64, patients, labels, tmp_path / "other.json", leaking)


def test_slices_are_a_memory_mapped_cache_with_their_fingerprint(tiny_phantom, tmp_path):
    prep = Preprocessing(size=16)
    slices = load_slices(BODY_REGION, tiny_phantom / "dicom", prep, tmp_path, "f" * 64)
    assert isinstance(slices.images, np.memmap) and slices.images.dtype == np.float16
    again = read_cache(next(tmp_path.glob("*/*")))
    np.testing.assert_array_equal(again.images, slices.images)
    assert (slices.official == "").all()


def test_splits_verify_proves_disjoint_nested_counted_manifests_and_catches_an_edit(tiny_phantom, tmp_path):
    from benchmark.core.specs import RunSpec
    from benchmark.core.workdir import Workdir
    from benchmark.evaluation.profiles import PROFILES
    from benchmark.execution.job_runner import prepare_task

    workdir = Workdir(tmp_path)
    spec = RunSpec(checkpoints=[], tasks=["phantom-body-region"], data_roots={"phantom-body-region": tiny_phantom / "dicom"})
    data = prepare_task(BODY_REGION, spec, workdir, PROFILES["demo"])
    for scale in (1.0, 0.5):
        make_budget(data.split, 42, scale, data.slices.patient_ids, data.split.path.parent / "seed42" / f"scale-{scale:g}.json")
    report = verify(workdir.splits, workdir.slices)
    assert report.problems == [] and report.manifests == 3 and report.counted == 3
    budget = data.split.path.parent / "seed42" / "scale-0.5.json"
    text = budget.read_text()
    test_patient = data.split.payload["test_patients"][0]
    budget.write_text(text.replace('"train_patients": [\n', f'"train_patients": [\n    "{test_patient}",\n', 1))
    problems = verify(workdir.splits, workdir.slices).problems
    assert any("differs from scale-0.5.json.sha256" in p for p in problems)
    assert any(f"patient {test_patient} is not in the split's pool" in p for p in problems)
    assert any("records train_patients" in p for p in problems)


def test_two_and_a_half_d_stacks_neighbours_and_repeats_the_ends():
    volume = np.arange(2 * 2 * 3, dtype=np.float32).reshape(2, 2, 3)
    stack = axial_image(volume, 0, neighbours=1)
    assert stack.shape == (3, 2, 2)
    np.testing.assert_array_equal(stack[0], stack[1])  # slice -1 repeats slice 0
    np.testing.assert_array_equal(stack[2], volume[:, :, 1].T)
    prep = Preprocessing(windows=[], channels=3, size=8, neighbours=1)
    assert slice_transform(prep)(stack).shape == (3, 8, 8)
    with pytest.raises(ValueError, match="at most one window"):
        Preprocessing(windows=[{"center": 0, "width": 10}, {"center": 1, "width": 10}], neighbours=1)


def test_spacing_resamples_to_millimetres_then_crops_or_pads():
    prep = Preprocessing(windows=[], channels=1, size=16, spacing_mm=1.0)
    image = np.ones((8, 8), np.float32)
    image[0, 0] = 0  # min-max needs two values
    out = slice_transform(prep)(image, spacing=(1.0, 1.0))
    assert out.shape == (1, 16, 16)
    assert (out[0, :4] == 0).all()  # an 8 mm field of view stays 8 mm: padded, not stretched
    mask = np.ones((32, 32), np.uint8)
    assert mask_transform(prep)(mask, spacing=(0.5, 0.5)).sum() == 256  # 16 mm of 0.5 mm pixels fill 16 x 16
    with pytest.raises(ValueError, match="gave this case none"):
        slice_transform(prep)(image)
