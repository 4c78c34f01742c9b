"""The Kidney Tumor Segmentation challenges, segmentation of axial CT slices:

* ``kits19-segmentation``: 0 background, 1 kidney, 2 tumor (KiTS19, 210 labelled cases);
* ``kits21-segmentation``: 0 background, 1 kidney, 2 tumor, 3 cyst (KiTS21, 300 cases).

Data: https://github.com/neheller/kits19 and https://github.com/neheller/kits21 (clone, then
run ``starter_code/get_imaging.py`` for the CT volumes). License: the data is CC BY-NC-SA 4.0
(the repositories' code is MIT). KiTS23 (https://github.com/neheller/kits23, ``dataset/``) keeps
KiTS21's labels and case layout, so ``kits21-segmentation`` reads it as well.

Layout: ``DIR/case_XXXXX/imaging.nii.gz`` with ``segmentation.nii.gz``; the kits21 repository
ships ``aggregated_MAJ_seg.nii.gz`` (majority vote of the annotators, the challenge's reference)
instead, which is read when there is no ``segmentation.nii.gz``. DIR may also be the
repository itself (its ``data/`` or ``dataset/`` folder is used).

Quirks handled here:

* KiTS arrays are (slices, rows, cols): axis 0 is axial, unlike LiTS and the MSD where it is
  axis 2. The axis is taken from that documented layout, not from the affine, because the
  first KiTS19 release (March 2019) had affines that put the slice thickness on x.
* KiTS19's ``case_00210`` … ``case_00299`` are the test set, whose labels were withheld:
  ``get_imaging.py`` downloads their imaging, so those folders hold no segmentation and
  are left out. A training case without its mask is an error, and so is an all-background
  mask (every training case shows a kidney): its case would otherwise drop out silently.

``dice_mean``, the main metric, averages the challenges' own ranking regions (KiTS19:
kidney and tumor together, tumor; KiTS21's hierarchical evaluation classes: kidney and
mass, mass = tumor and cyst, tumor), which are also reported per class.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Optional

from benchmark.core.errors import DataError
from benchmark.core.specs import Preprocessing, TaskSpec
from benchmark.data.readers.nifti import read_labelled_pair
from benchmark.data.task import Case, Task
from benchmark.evaluation.recipes import study_recipe
from tasks.lits import LIVER_WINDOWS, foreground_slices, segmentation_metrics

_CASE = re.compile(r"^case_(\d{5})$")
KITS_LICENSE = "CC BY-NC-SA 4.0 (the imaging and segmentations; the repositories' code is MIT)"


@dataclass(frozen=True)
class Edition:
    class_names: tuple[str, ...]
    mask_names: tuple[str, ...]  # in order of preference
    regions: dict[str, list[int]] = field(default_factory=dict)
    class_weights: tuple[float, ...] = ()  # the LiTS recipe's weights by role: organ 3, lesion 10
    first_withheld: Optional[int] = None  # cases from this number on are an unlabelled test set
    reference: str = ""
    citation: str = ""


class KitsTask(Task):
    def __init__(self, name: str, edition: Edition, description: str):
        self.edition = edition
        classes = list(edition.class_names)
        labels = ", ".join(f"{i} {c}" for i, c in enumerate(classes))
        self.spec = TaskSpec(
            name=name, version="1", description=description, domain="ct", kind="segmentation",
            class_names=classes, regions=edition.regions, metrics=segmentation_metrics(classes, edition.regions),
            main_metric="dice_mean", embedded=False, license=KITS_LICENSE, reference=edition.reference,
            citation=edition.citation,
            preprocessing=Preprocessing(windows=LIVER_WINDOWS, channels=3, size=64),
            data_layout=f"DIR/case_XXXXX/imaging.nii.gz beside {' or '.join(edition.mask_names)}, arrays "
                        f"(slices, rows, cols) (labels {labels})",
            training=study_recipe("lits", class_weights=list(edition.class_weights)),
        )

    def units(self, root: Path) -> list[Path]:
        cases = _case_folders(root)
        units = [case / "imaging.nii.gz" for case in cases if not self._withheld(case)]
        if not units:
            raise DataError(f"holds only unlabelled test cases ({len(cases)}) for task {self.spec.name}", root)
        return units

    def read(self, root: Path, unit: Path) -> Iterator[Case]:
        case = unit.parent
        if not unit.is_file():
            raise DataError("is missing (the imaging comes from the challenge's get_imaging script)", unit)
        image, mask = read_labelled_pair(unit, self._mask(case), set(range(len(self.edition.class_names))),
                                         foreground_of=self.spec.name)
        # (slices, rows, cols) -> the (X, Y, Z) = (cols, rows, slices) that axial slicing expects
        image_xyz, mask_xyz = image.array.transpose(2, 1, 0), mask.array.transpose(2, 1, 0)
        spacing = (image.spacing[1], image.spacing[2])
        name = f"{case.name}/{unit.name}"  # case_00000/imaging.nii.gz, whichever DIR was given
        for k, pixels, labels in foreground_slices(image_xyz, mask_xyz, self.spec.preprocessing.neighbours):
            yield Case(f"{name}#{k}", case.name, pixels, labels, {"spacing": spacing})

    def _mask(self, case: Path) -> Path:
        for name in self.edition.mask_names:
            if (case / name).is_file():
                return case / name
        raise DataError(f"has no {' or '.join(self.edition.mask_names)}", case)

    def _withheld(self, case: Path) -> bool:
        first = self.edition.first_withheld
        return (first is not None and int(_CASE.match(case.name).group(1)) >= first
                and not any((case / name).is_file() for name in self.edition.mask_names))


def _case_folders(root: Path) -> list[Path]:
    """The case_XXXXX folders of ``root``, or of the repository's data/ (kits19, kits21) or dataset/ (kits23)."""
    for folder in (root, root / "data", root / "dataset"):
        cases = sorted(p for p in folder.glob("case_*") if p.is_dir() and _CASE.match(p.name))
        if cases:
            return cases
    raise DataError("holds no KiTS case_XXXXX folders", root)


KITS19 = KitsTask(
    "kits19-segmentation",
    Edition(class_names=("background", "kidney", "tumor"), mask_names=("segmentation.nii.gz",),
            regions={"kidney_and_tumor": [1, 2], "tumor": [2]}, class_weights=(1.0, 3.0, 10.0), first_withheld=210,
            reference="https://github.com/neheller/kits19",
            citation="Heller N., Sathianathen N., Kalapara A., et al. The KiTS19 Challenge Data: 300 Kidney Tumor "
                     "Cases with Clinical Context, CT Semantic Segmentations, and Surgical Outcomes. "
                     "arXiv:1904.00445, 2019."),
    "Kidney and kidney tumor segmentation of contrast-enhanced CT slices (KiTS19 training cases).",
)
KITS21 = KitsTask(
    "kits21-segmentation",
    Edition(class_names=("background", "kidney", "tumor", "cyst"),
            mask_names=("segmentation.nii.gz", "aggregated_MAJ_seg.nii.gz"),
            regions={"kidney_and_mass": [1, 2, 3], "mass": [2, 3], "tumor": [2]},
            class_weights=(1.0, 3.0, 10.0, 10.0), reference="https://github.com/neheller/kits21",
            citation="Heller N., Isensee F., Trofimova D., et al. The KiTS21 Challenge: Automatic segmentation of "
                     "kidneys, renal tumors, and renal cysts in corticomedullary-phase CT. arXiv:2307.01984, 2023."),
    "Kidney, kidney tumor and cyst segmentation of contrast-enhanced CT slices (KiTS21 training cases).",
)
TASKS = [KITS19, KITS21]
