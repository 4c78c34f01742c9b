"""``phantom-body-region``: 6-class CT body-region classification, the embedded analogue of
the study's RadNet-1.28M task.

The reader is a real-data reader: it takes the label from each file's
BodyPartExamined tag and the patient from PatientID, so any folder of CT DICOM with
those tags can be evaluated with ``--data phantom-body-region=DIR``.
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterator

from benchmark.core.errors import DataError
from benchmark.core.specs import Preprocessing, TaskSpec, Window
from benchmark.data.readers.dicom import iter_dicom_files, read_ct_slice
from benchmark.data.task import Case, Task
from benchmark.evaluation.recipes import study_recipe
from benchmark.synthetic.embedded import phantom_dataset
from benchmark.synthetic.phantom import REGIONS

# BodyPartExamined defined terms (DICOM PS3.16 CID 4031) and common vendor spellings.
BODY_PART_TO_REGION = {
    "HEADNECK": "head_neck", "HEAD": "head_neck", "NECK": "head_neck", "BRAIN": "head_neck", "SKULL": "head_neck",
    "CHEST": "thorax", "THORAX": "thorax", "LUNG": "thorax",
    "ABDOMEN": "abdomen", "LIVER": "abdomen",
    "EXTREMITY": "extremities", "LEG": "extremities", "ARM": "extremities", "KNEE": "extremities",
    "THIGH": "extremities", "UPRLIMB": "extremities", "LOWERLIMB": "extremities",
    "PELVIS": "hip_pelvis", "HIP": "hip_pelvis",
    "SPINE": "spine", "CSPINE": "spine", "TSPINE": "spine", "LSPINE": "spine",
}


class PhantomBodyRegion(Task):
    spec = TaskSpec(
        name="phantom-body-region",
        version="1",
        description="Body region of a CT slice (6 classes), on procedural phantom patients written as DICOM.",
        domain="ct",
        kind="classification",
        class_names=list(REGIONS),
        metrics=["accuracy", "balanced_accuracy", "auc"],
        main_metric="accuracy",
        default_scales=[1.0, 0.1, 0.01],
        reader="dicom-body-part",
        preprocessing=Preprocessing(
            windows=[Window(center=40, width=400), Window(center=-600, width=1500), Window(center=400, width=1800)],
            channels=3, size=64),
        data_layout="DIR/**/*.dcm: CT slices; label from BodyPartExamined, patient from PatientID",
        embedded=True,
        training=study_recipe("body-region"),
    )

    def units(self, root: Path) -> list[Path]:
        files = list(iter_dicom_files(root))
        if not files:
            raise DataError("holds no *.dcm files", root)
        return files

    def read(self, root: Path, unit: Path) -> Iterator[Case]:
        hu, ds = read_ct_slice(unit)
        yield Case(case_id=unit.relative_to(root).as_posix(), patient_id=str(ds.PatientID), image=hu,
                   label=REGIONS.index(_region_of(ds, unit)),
                   meta={"spacing": tuple(float(v) for v in getattr(ds, "PixelSpacing", (1.0, 1.0)))})

    def prepare_embedded(self, data_dir: Path) -> Path:
        return phantom_dataset(data_dir) / "dicom"


def _region_of(ds, path: Path) -> str:
    body_part = str(getattr(ds, "BodyPartExamined", "")).upper().replace(" ", "")
    if body_part not in BODY_PART_TO_REGION:
        raise DataError(f"BodyPartExamined {body_part or '(missing)'!r} is not one of the known body parts", path)
    return BODY_PART_TO_REGION[body_part]


TASK = PhantomBodyRegion()
