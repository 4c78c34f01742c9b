"""The six CT tasks of the Medical Segmentation Decathlon (MSD), segmentation of axial slices:
``msd-liver`` (Task03), ``msd-lung`` (Task06), ``msd-pancreas`` (Task07), ``msd-hepaticvessel``
(Task08), ``msd-spleen`` (Task09) and ``msd-colon`` (Task10).

Data: http://medicaldecathlon.com/ (the ``TaskNN_Name.tar`` archives, also on the MONAI
mirror https://msd-for-monai.s3-us-west-2.amazonaws.com/). License: CC BY-SA 4.0 (each
task's ``dataset.json`` says so). Only the labelled training set is read; ``imagesTs/`` has
no public labels.

Layout: ``DIR = TaskNN_Name/`` (or the folder holding it) with ``dataset.json``,
``imagesTr/<prefix>_<id>.nii.gz`` and ``labelsTr/<prefix>_<id>.nii.gz``. The cases are those
of ``dataset.json``'s ``training`` list, not a directory listing, because the tarballs also
hold macOS AppleDouble files (``imagesTr/._liver_0.nii.gz``, a few hundred bytes, not NIfTI)
that a glob would pick up. ``dataset.json`` is checked first: its ``name``, a single ``CT``
channel, and its ``labels`` in the order this adapter maps them, so a folder of another task
(or a relabelled copy) is refused instead of silently scored with the wrong class names.

One case file is one patient (its file stem, e.g. ``liver_0``). Slices are axial (axis 2)
and only those with foreground are kept, as 2-D pipelines do; for the tumour-only tasks
(lung, colon) that is the slices showing the tumour. Every training case has foreground,
so an all-background label file is refused by name rather than dropping out silently.
Task10's labels are stored as float32 0.0/1.0, which the reader accepts as long as they are
whole numbers.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from benchmark.core.errors import DataError
from benchmark.core.specs import Preprocessing, TaskSpec, Window
from benchmark.data.readers.nifti import read_labelled_pair
from benchmark.data.task import Case, Task
from benchmark.evaluation.recipes import study_recipe
from tasks.lits import LIVER_WINDOWS, foreground_slices, segmentation_metrics

LUNG_WINDOWS = [Window(center=-600, width=1500), Window(center=40, width=400), Window(center=0, width=2000)]
VESSEL_WINDOWS = [Window(center=60, width=200), Window(center=40, width=400), Window(center=150, width=500)]
MSD_SOURCE = dict(
    license="CC BY-SA 4.0",
    reference="http://medicaldecathlon.com/",
    citation="Antonelli M., Reinke A., Bakas S., et al. The Medical Segmentation Decathlon. "
             "Nature Communications 13:4128, 2022.",
)


@dataclass(frozen=True)
class Decathlon:
    """One MSD task as its ``dataset.json`` describes it, and how ctbench names it."""

    folder: str  # TaskNN_Name
    name: str  # dataset.json "name"
    labels: tuple[str, ...]  # dataset.json "labels", in index order
    class_names: tuple[str, ...]  # metric-safe spellings of the same classes
    class_weights: tuple[float, ...]  # the LiTS recipe's weights by role: organ 3, lesion 10
    windows: tuple[Window, ...]
    description: str


DECATHLON = {
    "msd-liver": Decathlon("Task03_Liver", "Liver", ("background", "liver", "cancer"),
                           ("background", "liver", "cancer"), (1.0, 3.0, 10.0), tuple(LIVER_WINDOWS),
                           "Liver and liver cancer segmentation of contrast CT slices (MSD Task03, from LiTS)."),
    "msd-lung": Decathlon("Task06_Lung", "Lung", ("background", "cancer"),
                          ("background", "cancer"), (1.0, 10.0), tuple(LUNG_WINDOWS),
                          "Non-small-cell lung cancer segmentation of chest CT slices (MSD Task06)."),
    "msd-pancreas": Decathlon("Task07_Pancreas", "Pancreas", ("background", "pancreas", "cancer"),
                              ("background", "pancreas", "cancer"), (1.0, 3.0, 10.0), tuple(LIVER_WINDOWS),
                              "Pancreas and pancreatic tumour segmentation of portal-venous CT slices (MSD Task07)."),
    "msd-hepaticvessel": Decathlon("Task08_HepaticVessel", "HepaticVessel", ("background", "vessel", "tumour"),
                                   ("background", "vessel", "tumour"), (1.0, 3.0, 10.0), tuple(VESSEL_WINDOWS),
                                   "Hepatic vessel and liver tumour segmentation of CT slices (MSD Task08)."),
    "msd-spleen": Decathlon("Task09_Spleen", "Spleen", ("background", "spleen"),
                            ("background", "spleen"), (1.0, 3.0), tuple(LIVER_WINDOWS),
                            "Spleen segmentation of portal-venous CT slices (MSD Task09)."),
    "msd-colon": Decathlon("Task10_Colon", "Colon", ("background", "colon cancer primaries"),
                           ("background", "colon_cancer"), (1.0, 10.0), tuple(LIVER_WINDOWS),
                           "Colon cancer primary tumour segmentation of CT slices (MSD Task10)."),
}


class MsdTask(Task):
    def __init__(self, name: str, task: Decathlon):
        self.decathlon = task
        classes = list(task.class_names)
        labels = ", ".join(f"{i} {label}" for i, label in enumerate(task.labels))
        self.spec = TaskSpec(
            name=name, version="1", description=task.description, domain="ct", kind="segmentation",
            class_names=classes, metrics=segmentation_metrics(classes), main_metric="dice_mean",
            embedded=False, **MSD_SOURCE,
            preprocessing=Preprocessing(windows=list(task.windows), channels=3, size=64),
            data_layout=f"DIR = {task.folder}/ (or its parent): dataset.json, imagesTr/*.nii.gz, "
                        f"labelsTr/*.nii.gz (labels {labels})",
            training=study_recipe("lits", class_weights=list(task.class_weights)),
        )

    def units(self, root: Path) -> list[Path]:
        return [image for image, _ in self._training(root)]

    def read(self, root: Path, unit: Path) -> Iterator[Case]:
        label = dict(self._training(root))[unit]
        for path, what in ((unit, "image"), (label, "label")):
            if not path.is_file():
                raise DataError(f"{what} listed in dataset.json is missing", path)
        image, mask = read_labelled_pair(unit, label, set(range(len(self.decathlon.labels))),
                                         foreground_of=self.spec.name)
        patient = unit.name.split(".")[0]
        name = f"{unit.parent.name}/{unit.name}"  # imagesTr/liver_0.nii.gz, whichever DIR was given
        spacing = (image.spacing[1], image.spacing[0])  # rows are Y, columns X
        for k, pixels, labels in foreground_slices(image.array, mask.array, self.spec.preprocessing.neighbours):
            yield Case(f"{name}#{k}", patient, pixels, labels, {"spacing": spacing})

    def _training(self, root: Path) -> list[tuple[Path, Path]]:
        """(image, label) pairs of a checked dataset.json, in case-number order."""
        folder = self._task_folder(root)
        index = _read_index(folder / "dataset.json")
        self._check_index(index, folder / "dataset.json")
        pairs = [(folder / entry["image"], folder / entry["label"]) for entry in index["training"]]
        return sorted(((i, m) for i, m in pairs if not i.name.startswith("._")), key=lambda p: _natural(p[0].name))

    def _task_folder(self, root: Path) -> Path:
        for folder in (root, root / self.decathlon.folder):
            if (folder / "dataset.json").is_file():
                return folder
        raise DataError(f"has no dataset.json; expected the {self.decathlon.folder} folder or the folder holding it",
                        root)

    def _check_index(self, index: dict, path: Path) -> None:
        task = self.decathlon
        name = index.get("name")
        if name is not None and _normal(str(name)) != _normal(task.name):
            raise DataError(f"is the dataset.json of MSD task {name!r}, not {task.name!r} ({task.folder}) "
                            f"that task {self.spec.name} reads", path)
        modality = index.get("modality")
        if not isinstance(modality, dict) or [str(v).strip().upper() for v in modality.values()] != ["CT"]:
            raise DataError(f"modality {modality!r} is not the single CT channel of {task.folder}", path)
        labels = _labels_in_order(index.get("labels"), path)
        if [label.lower() for label in labels] != list(task.labels):
            raise DataError(f"labels {labels} are not {task.folder}'s {list(task.labels)}", path)


def _read_index(path: Path) -> dict:
    try:
        index = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise DataError(f"not a readable dataset.json ({type(exc).__name__}: {exc})", path) from None
    training = index.get("training") if isinstance(index, dict) else None
    if not isinstance(training, list) or not training:
        raise DataError("has no 'training' list of cases", path)
    if not all(isinstance(e, dict) and isinstance(e.get("image"), str) and isinstance(e.get("label"), str)
               for e in training):
        raise DataError("'training' entries must each name an 'image' and a 'label' file", path)
    return index


def _labels_in_order(labels, path: Path) -> list[str]:
    """dataset.json's {"0": "background", "1": ...} as a list; the keys must be 0..n-1."""
    if not isinstance(labels, dict) or set(labels) != {str(i) for i in range(len(labels))}:
        raise DataError(f"labels {labels!r} are not a mapping of the indices 0..n-1 to names", path)
    return [str(labels[str(i)]) for i in range(len(labels))]


def _normal(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower())


def _natural(name: str) -> tuple:
    """liver_2 before liver_10."""
    return tuple(int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name))


TASKS = [MsdTask(name, task) for name, task in DECATHLON.items()]
