"""Generic tasks for users' own data: no plugin code needed, the classes come from the data.

* ``dicom-folder``: CT DICOM series plus ``labels.csv`` (columns ``series,label``: a series
  folder relative to DIR and its class name); every slice of a series is a case with the
  series' label, grouped by the DICOM PatientID. A folder mixing series, or with uneven
  slice gaps (a missing or duplicated slice), is refused. Classes: ``classes.txt`` (one per line, in
  order) if present, else the sorted labels of the CSV.
  Or a whole export tree (a DICOMDIR, or any folders) with ``labels.csv`` keyed by a column named
  ``SeriesInstanceUID``, ``PatientID`` or ``StudyInstanceUID`` (plus ``label``): the tree is indexed
  (``ctbench data index DIR`` shows it) and one axial CT series per key is read, picked by the rule
  of ``benchmark.data.series_selection`` (most slices at most 5 mm thick, ties to a soft-tissue kernel;
  ``DIR/selection.json`` may set ``description``/``kernel`` regexes and ``max_thickness_mm``). Every
  slice or Enhanced CT frame of it is a case (id: the file's relative path, ``#frame`` for a
  multi-frame file), in order along the slice normal. ``tasks validate`` lists each chosen and
  skipped series with why, and results record the choice in their provenance.
* ``nifti-folder``: ``images/<case>.nii[.gz]`` and ``masks/<case>.nii[.gz]`` (same names),
  axial slices that contain foreground; classes from ``classes.txt`` (background first),
  else background/foreground. The case name is the patient.
* ``image-folder``: torchvision's ImageFolder, ``DIR/<class>/<image>``, or ImageNet's
  ``DIR/train/<class>/…`` + ``DIR/val/<class>/…``, whose ``val`` is then the official
  test set. Classes are the class folders, sorted; each image is its own group.

Because the classes are read from the folder, ``bind`` returns a task whose spec lists them;
that spec is what every result records.
"""
from __future__ import annotations

import csv
from pathlib import Path
from typing import Iterator

import numpy as np

from benchmark.core.errors import DataError
from benchmark.core.specs import Preprocessing, TaskSpec, Window
from benchmark.data.inspect import check_series
from benchmark.data.readers.dicom import iter_dicom_files, read_ct_slice
from benchmark.data.readers.dicom_frames import read_ct_frames
from benchmark.data.readers.dicom_index import index_tree, tree_key, tree_listing
from benchmark.data.readers.image import IMAGE_SUFFIXES, read_rgb
from benchmark.data.readers.nifti import read_labelled_pair
from benchmark.data.readers.volume import axial_image
from benchmark.data.series_selection import KEY_COLUMNS, Selection, read_rule, select_series
from benchmark.data.task import Case, Task

FROM_DATA = ["(read from the data folder)"]
_SELECTIONS: dict[str, tuple] = {}  # resolved root -> (tree key, Selection): one header pass per state of a tree
CT_WINDOWS = [Window(center=40, width=400), Window(center=-600, width=1500), Window(center=400, width=1800)]
# The data is the user's: its terms and its paper are theirs to state; the reference is the format's.
USER_DATA = dict(license="the user's own data: its licence is the user's to state and respect",
                 citation="none built in: cite the source of your own data")


def _classes_txt(root: Path) -> list[str] | None:
    path = root / "classes.txt"
    if not path.is_file():
        return None
    names = [line.strip() for line in path.read_text().splitlines() if line.strip()]
    if len(names) < 2 or len(set(names)) != len(names):
        raise DataError("must list at least two distinct class names, one per line", path)
    return names


class _Generic(Task):
    def bind(self, root: Path) -> Task:
        bound = type(self)()
        bound.spec = self.spec.model_copy(update={"class_names": self.class_names(root)})
        return bound

    def class_names(self, root: Path) -> list[str]:
        raise NotImplementedError


class DicomFolder(_Generic):
    spec = TaskSpec(
        name="dicom-folder", version="1", domain="ct", kind="classification", class_names=FROM_DATA,
        description="Your CT DICOM series, one label per series (or per patient or study) from labels.csv.",
        metrics=["accuracy", "balanced_accuracy", "auc"], main_metric="accuracy", **USER_DATA,
        reference="https://www.dicomstandard.org/",
        preprocessing=Preprocessing(windows=CT_WINDOWS, channels=3, size=64),
        data_layout="DIR/labels.csv (series,label) + DIR/<series>/*.dcm, or an export tree (DIR/DICOMDIR or any "
                    "folders) + DIR/labels.csv (SeriesInstanceUID|PatientID|StudyInstanceUID,label) "
                    "[+ DIR/selection.json] [+ DIR/classes.txt]",
    )

    def _labels(self, root: Path) -> tuple[str, dict[str, str]]:
        """The key column (``series`` for the folder layout, else a DICOM keyword) and key -> label."""
        path = root / "labels.csv"
        if not path.is_file():
            raise DataError("has no labels.csv (columns series,label, or SeriesInstanceUID, PatientID or "
                            "StudyInstanceUID plus label)", root)
        with open(path, newline="") as handle:
            rows = list(csv.DictReader(handle))
        columns = set(rows[0]) if rows else set()
        key = next((k for k in ("series", *KEY_COLUMNS) if k in columns), None)
        if key is None or "label" not in columns:
            raise DataError("needs the columns series,label (a series folder) or one of SeriesInstanceUID, "
                            "PatientID, StudyInstanceUID plus label, and at least one row", path)
        return key, {(row[key] or "").strip(): (row["label"] or "").strip() for row in rows}

    def class_names(self, root: Path) -> list[str]:
        return _classes_txt(root) or sorted(set(self._labels(root)[1].values()))

    def _selection(self, root: Path, reuse: bool = False) -> Selection | None:
        """The series chosen in an export tree (None for the folder layout), computed once per
        state of the tree: units, read, notes and provenance all ask for it. ``reuse`` takes the
        one already made for ``root`` without walking the tree again (``read``, once per unit,
        right after ``units`` made it; its ``check_series`` still checks the series' own files)."""
        key_column, labels = self._labels(root)
        if key_column == "series":
            return None
        where = str(root.resolve())
        if reuse and where in _SELECTIONS:
            return _SELECTIONS[where][1]
        state = tree_key(tree_listing(root))  # labels.csv and selection.json too
        if _SELECTIONS.get(where, (None,))[0] != state:
            index = index_tree(root)
            selection = select_series(index, labels, key_column, read_rule(root), root / "labels.csv")
            selection.problems[:0] = index["problems"]
            selection.index_notes = index["notes"]
            _SELECTIONS[where] = (state, selection)
        return _SELECTIONS[where][1]

    def notes(self, root: Path) -> list[str]:
        selection = self._selection(root)
        return [] if selection is None else [*selection.index_notes, *selection.notes()]

    def provenance(self, root: Path) -> dict:
        selection = self._selection(root)
        return {} if selection is None else {"dicom_series_selection": selection.record()}

    def _validate_bound(self, root: Path) -> list[str]:
        """In an export tree, every unreadable file and unusable key first, each on its own line."""
        try:
            selection = self._selection(root)
        except DataError as exc:
            return [str(exc)]
        if selection is not None and selection.problems:
            return list(selection.problems)
        return super()._validate_bound(root)

    def units(self, root: Path) -> list[Path]:
        selection = self._selection(root)
        if selection is not None:
            if selection.problems:
                more = f" (and {len(selection.problems) - 1} more: ctbench tasks validate lists them)" \
                    if len(selection.problems) > 1 else ""
                raise DataError(selection.problems[0] + more)
            return [root / c["row"]["instances"][0]["path"] for c in selection.chosen]
        units = []
        for series in sorted(self._labels(root)[1]):
            folder = root / series
            if not folder.is_dir():
                raise DataError(f"labels.csv names series {series!r}, which is not a folder", folder)
            units.append(folder)
        return units

    def read(self, root: Path, unit: Path) -> Iterator[Case]:
        selection = self._selection(root, reuse=True)
        if selection is not None:
            yield from self._read_series(root, unit, selection)
            return
        label = self._labels(root)[1][unit.relative_to(root).as_posix()]
        self._check_label(root, label)
        files = list(iter_dicom_files(unit))
        if not files:
            raise DataError("holds no DICOM files", unit)
        check_series(unit, files)  # one series, no missing or duplicated slices
        for path in files:
            hu, ds = read_ct_slice(path)
            yield Case(path.relative_to(root).as_posix(), str(ds.PatientID), hu, self.spec.class_names.index(label),
                       {"spacing": tuple(float(v) for v in getattr(ds, "PixelSpacing", (1.0, 1.0)))})

    def _check_label(self, root: Path, label: str) -> None:
        if label not in self.spec.class_names:
            raise DataError(f"label {label!r} is not one of the classes {self.spec.class_names}", root / "labels.csv")

    def _read_series(self, root: Path, unit: Path, selection: Selection) -> Iterator[Case]:
        """Every slice (or Enhanced CT frame) of the chosen series, in order along its normal."""
        rel = unit.relative_to(root).as_posix()
        choice = next(c for c in selection.chosen if c["row"]["instances"][0]["path"] == rel)
        self._check_label(root, choice["label"])
        row = choice["row"]
        files = list(dict.fromkeys(root / i["path"] for i in row["instances"]))
        check_series(unit.parent, files)  # one series, one orientation, no missing or duplicated slices
        frames: dict[Path, list] = {}
        for instance in row["instances"]:
            path = root / instance["path"]
            if path not in frames:
                frames = {path: read_ct_frames(path)}  # one file's frames in memory at a time
            hu, geometry = frames[path][instance["frame"] or 0]
            case_id = instance["path"] + (f"#{instance['frame']}" if instance["frame"] is not None else "")
            yield Case(case_id, str(row["patient"]), hu, self.spec.class_names.index(choice["label"]),
                       {"spacing": tuple(geometry.pixel_spacing)})


class NiftiFolder(_Generic):
    spec = TaskSpec(
        name="nifti-folder", version="1", domain="ct", kind="segmentation", class_names=FROM_DATA,
        description="Your CT volumes and masks; axial slices with foreground, Dice per class.",
        metrics=["dice_mean"], main_metric="dice_mean", **USER_DATA,
        reference="https://nifti.nimh.nih.gov/",
        preprocessing=Preprocessing(windows=CT_WINDOWS, channels=3, size=64),
        data_layout="DIR/images/<case>.nii[.gz] + DIR/masks/<case>.nii[.gz] [+ DIR/classes.txt, background first]",
    )

    def class_names(self, root: Path) -> list[str]:
        return _classes_txt(root) or ["background", "foreground"]

    def units(self, root: Path) -> list[Path]:
        images = sorted(p for p in (root / "images").glob("*.nii*") if not p.name.startswith("._"))
        if not images:
            raise DataError("holds no images/*.nii[.gz] files", root)
        return images

    def read(self, root: Path, unit: Path) -> Iterator[Case]:
        mask_path = root / "masks" / unit.name
        if not mask_path.is_file():
            raise DataError(f"has no mask masks/{unit.name}", unit)
        image, mask = read_labelled_pair(unit, mask_path, set(range(len(self.spec.class_names))))
        if not mask.array.any():  # it would add no slice: the case would vanish from the dataset unseen
            raise DataError("mask holds no foreground, so its volume gives no slices; fix the mask or move "
                            "the case out of the folder", mask_path)
        case = unit.name.split(".nii")[0]
        neighbours = self.spec.preprocessing.neighbours
        for k in np.flatnonzero(mask.array.any(axis=(0, 1))):
            yield Case(f"{unit.name}#{k}", case, axial_image(image.array, int(k), neighbours),
                       axial_image(mask.array, int(k)), {"spacing": (image.spacing[1], image.spacing[0])})


class ImageFolder(_Generic):
    spec = TaskSpec(
        name="image-folder", version="1", domain="natural", kind="classification", class_names=FROM_DATA,
        description="Natural images in torchvision's ImageFolder (or ImageNet's train/val) layout.",
        metrics=["accuracy", "balanced_accuracy", "auc"], main_metric="accuracy", **USER_DATA,
        reference="https://pytorch.org/vision/stable/generated/torchvision.datasets.ImageFolder.html",
        preprocessing=Preprocessing(windows=[Window(center=127.5, width=255)], channels=3, size=64),
        data_layout="DIR/<class>/<image> or DIR/train/<class>/<image> + DIR/val/<class>/<image>",
    )

    @staticmethod
    def _class_roots(root: Path) -> dict[str, Path]:
        """``{"": root}`` for a plain ImageFolder, ``{"train": ..., "test": .../val}`` for ImageNet's."""
        if (root / "train").is_dir() and (root / "val").is_dir():
            return {"train": root / "train", "test": root / "val"}
        return {"": root}

    def class_names(self, root: Path) -> list[str]:
        names = sorted({d.name for folder in self._class_roots(root).values() for d in folder.iterdir()
                        if d.is_dir() and not d.name.startswith(".")})
        if len(names) < 2:
            raise DataError("needs at least two class folders", root)
        return names

    def units(self, root: Path) -> list[Path]:
        files = sorted(p for folder in self._class_roots(root).values() for p in folder.rglob("*")
                       if p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith("._"))
        if not files:
            raise DataError("holds no images", root)
        return files

    def read(self, root: Path, unit: Path) -> Iterator[Case]:
        splits = self._class_roots(root)
        split = next(s for s, folder in splits.items() if unit.is_relative_to(folder))
        class_name = unit.relative_to(splits[split]).parts[0]
        if class_name not in self.spec.class_names:
            raise DataError(f"folder {class_name!r} is not a class of this dataset", unit)
        name = unit.relative_to(root).as_posix()
        yield Case(name, name, read_rgb(unit), self.spec.class_names.index(class_name), {"split": split} if split else {})


TASKS = [DicomFolder(), NiftiFolder(), ImageFolder()]
