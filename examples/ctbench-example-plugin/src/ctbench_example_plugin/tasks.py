"""``example-chest-vs-abdomen``: is a CT slice from the chest or the abdomen?

A complete task plugin in one file: a TaskSpec (what the task is and how it is scored)
and a reader (how its on-disk layout becomes cases). The layout is any folder of CT
DICOM whose BodyPartExamined tag says CHEST or ABDOMEN; slices of other body parts are
not part of this task and are left out on purpose (and counted in the description).

The same file works three ways: installed (the entry point in pyproject.toml), or
loaded with ``ctbench --include-path`` pointing at this folder, or copied into a
project's own plugin folder.
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterator

from benchmark.api import (
    Case,
    DataError,
    Preprocessing,
    Task,
    TaskSpec,
    Window,
    iter_dicom_files,
    read_ct_slice,
    read_header,
    study_recipe,
)

CLASSES = {"CHEST": "chest", "ABDOMEN": "abdomen"}


class ChestVsAbdomen(Task):
    spec = TaskSpec(
        name="example-chest-vs-abdomen",
        version="1",
        description="Chest or abdomen CT slice (example plugin; other body parts are not part of the task).",
        domain="ct",
        kind="classification",
        class_names=list(CLASSES.values()),
        metrics=["auc", "accuracy"],
        main_metric="auc",
        default_scales=[1.0, 0.5],
        license="your own data: state its licence here (e.g. CC BY 4.0) and respect it",
        reference="https://dicom.nema.org/medical/dicom/current/output/chtml/part16/chapter_L.html",
        citation="none built in: cite the paper of the data you point it at",
        preprocessing=Preprocessing(windows=[Window(center=40, width=400), Window(center=-600, width=1500)],
                                    channels=3, size=64),
        data_layout="DIR/**/*.dcm, CT, with BodyPartExamined CHEST or ABDOMEN; PatientID groups the split",
        training=study_recipe("body-region"),
    )

    def units(self, root: Path) -> list[Path]:
        """Only the files of this task's two body parts; the header alone decides, so this stays cheap."""
        files = [p for p in iter_dicom_files(root) if _body_part(p) in CLASSES]
        if not files:
            raise DataError("holds no CT DICOM with BodyPartExamined CHEST or ABDOMEN", root)
        return files

    def read(self, root: Path, unit: Path) -> Iterator[Case]:
        hu, ds = read_ct_slice(unit)
        label = self.spec.class_names.index(CLASSES[_body_part(unit)])
        yield Case(unit.relative_to(root).as_posix(), str(ds.PatientID), hu, label)


def _body_part(path: Path) -> str:
    return str(getattr(read_header(path), "BodyPartExamined", "")).upper()


TASKS = [ChestVsAbdomen()]
