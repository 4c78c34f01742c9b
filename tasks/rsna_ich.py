"""``rsna-ich``: intracranial haemorrhage and its five subtypes on head CT slices, multilabel
(RSNA 2019 Intracranial Hemorrhage Detection).

Data: https://www.kaggle.com/c/rsna-intracranial-hemorrhage-detection (Kaggle account; the
RSNA also hosts it, see https://github.com/RSNA/AI-Challenge-Data/wiki). License: non-commercial
research and education use; cite "Brain CT Hemorrhage Dataset, Copyright RSNA, 2019", Flanders
et al., Radiology: Artificial Intelligence 2020;2(3):e190211.

Layout: ``stage_2_train/ID_<hex>.dcm`` (one CT slice per file) and ``stage_2_train.csv`` with the
columns ``ID,Label`` and six rows per slice, ``ID_<hex>_<subtype>,0|1``, for epidural,
intraparenchymal, intraventricular, subarachnoid, subdural and any (the label order here). The
patient is the DICOM PatientID: one patient has many slices and several studies, so splitting
by image id would leak.

Input: the brain (40/80), subdural (80/200) and bone (600/2800) windows as three channels, the
"brain/subdural/bone" input of the competition's solutions.

Quirks handled, each documented in the competition's discussions:

* some slices were stored wrongly (12 bits stored, unsigned, intercept about 0 instead of
  -1000), so air reads as +3096 HU; such a slice gets ``stored + 1000``, minus 4096 where that
  reaches 4096, with intercept -1000 (fastai's ``correct_dcm``, from the Kaggle kernels);
* ``stage_2_train.csv`` repeats a few images' rows; identical repeats are merged, conflicting
  ones are an error;
* ``ID_6431af929.dcm`` has undecodable pixel data in every copy of the data; it and its CSV rows
  are left out by name, as every published solution did, so all copies give the same cases.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Iterator

import numpy as np
import pandas as pd
import pydicom

from benchmark.core.errors import DataError
from benchmark.core.specs import Preprocessing, TaskSpec, Window
from benchmark.data.readers.dicom import iter_dicom_files, read_ct_slice
from benchmark.data.task import Case, Task
from benchmark.evaluation.recipes import study_recipe

SUBTYPES = ("epidural", "intraparenchymal", "intraventricular", "subarachnoid", "subdural", "any")
IMAGE_DIR = "stage_2_train"
LABEL_CSV = "stage_2_train.csv"
KNOWN_UNREADABLE = frozenset({"ID_6431af929"})
_SUBTYPE_INDEX = {name: k for k, name in enumerate(SUBTYPES)}
_LABEL_VALUE = {"0": 0, "1": 1}


@dataclass(frozen=True)
class Labels:
    csv: Path
    rows: dict[str, int]  # image id -> row of ``table``
    table: np.ndarray  # (images, 6) float, NaN where the CSV has no row for that subtype


class RsnaIntracranialHemorrhage(Task):
    spec = TaskSpec(
        name="rsna-ich",
        version="1",
        description="Intracranial haemorrhage (any) and its five subtypes on axial head CT slices, "
                    "multilabel (RSNA 2019).",
        domain="ct",
        kind="multilabel",
        class_names=list(SUBTYPES),
        metrics=["auc"],
        main_metric="auc",
        license="RSNA terms: non-commercial research and education use, citing the RSNA and Flanders et al. 2020",
        reference="https://www.kaggle.com/c/rsna-intracranial-hemorrhage-detection",
        citation="Flanders A. E., Prevedello L. M., Shih G., et al. Construction of a Machine Learning Dataset through "
                 "Collaboration: The RSNA 2019 Brain CT Hemorrhage Challenge. Radiology: Artificial Intelligence "
                 "2(3):e190211, 2020. (Brain CT Hemorrhage Dataset, Copyright RSNA, 2019.)",
        preprocessing=Preprocessing(
            windows=[Window(center=40, width=80), Window(center=80, width=200), Window(center=600, width=2800)],
            channels=3, size=64),
        data_layout="DIR/stage_2_train/ID_<hex>.dcm and DIR/stage_2_train.csv (ID_<hex>_<subtype>,0|1)",
        training=study_recipe("chestxray8", class_weights=None),  # the study's recipe for 2-D multilabel classification
    )

    def units(self, root: Path) -> list[Path]:
        _load_labels.cache_clear()
        labels = load_labels(root)
        folder = root / IMAGE_DIR
        if not folder.is_dir():
            raise DataError(f"has no {IMAGE_DIR}/ folder", root)
        files = [p for p in iter_dicom_files(folder) if p.stem not in KNOWN_UNREADABLE]
        if not files:
            raise DataError("holds no *.dcm files", folder)
        missing = sorted(set(labels.rows) - {p.stem for p in files})
        if missing:
            raise DataError(f"{len(missing)} image id(s) in {LABEL_CSV} have no file in {IMAGE_DIR}/, e.g. "
                            f"{', '.join(missing[:5])}", labels.csv)
        return files

    def read(self, root: Path, unit: Path) -> Iterator[Case]:
        label = labels_of(unit, load_labels(root))
        hu, ds = read_rsna_slice(unit)
        patient = str(getattr(ds, "PatientID", "")).strip()
        if not patient:
            raise DataError("has no PatientID", unit)
        spacing = tuple(float(v) for v in getattr(ds, "PixelSpacing", (1.0, 1.0)))
        yield Case(unit.relative_to(root).as_posix(), patient, hu, label, {"spacing": spacing})


def read_rsna_slice(path: Path) -> tuple[np.ndarray, pydicom.Dataset]:
    """The slice in HU, with the competition's known mis-stored slices put right first."""
    hu, ds = read_ct_slice(path)
    if needs_correction(ds):
        stored = ds.pixel_array.astype(np.int32) + 1000
        stored[stored >= 4096] -= 4096
        hu = (stored * float(ds.RescaleSlope) - 1000.0).astype(np.float32)
    return hu, ds


def needs_correction(ds: pydicom.Dataset) -> bool:
    return (int(ds.BitsStored) == 12 and int(ds.PixelRepresentation) == 0
            and float(ds.RescaleIntercept) > -100)


def labels_of(unit: Path, labels: Labels) -> np.ndarray:
    row = labels.rows.get(unit.stem)
    if row is None:
        raise DataError(f"image id {unit.stem} has no rows in {LABEL_CSV}", unit)
    values = labels.table[row]
    if np.isnan(values).any():
        absent = [s for s, v in zip(SUBTYPES, values) if np.isnan(v)]
        raise DataError(f"image id {unit.stem} has no row for {absent}", labels.csv)
    return values.astype(np.int64)


def load_labels(root: Path) -> Labels:
    """The label table, cached so that one slice does not re-parse 4.5 million rows; units() clears it."""
    csv = root / LABEL_CSV
    if not csv.is_file():
        raise DataError(f"has no {LABEL_CSV} (the label file)", root)
    stat = csv.stat()
    return _load_labels(csv, (stat.st_size, stat.st_mtime_ns))


@lru_cache(maxsize=2)
def _load_labels(csv: Path, stamp: tuple) -> Labels:
    """Plain Python string splitting and integer keys: pandas' string methods take a minute on 4.5 M rows."""
    ids, values = _read_label_rows(csv)
    parts = [i.rpartition("_") for i in ids]
    subtype = np.fromiter((_SUBTYPE_INDEX.get(p[2], -1) for p in parts), np.int64, len(parts))
    images = np.array([p[0] for p in parts], dtype=object)
    well_formed = np.fromiter((p[1] == "_" and p[0].startswith("ID_") for p in parts), bool, len(parts))
    _refuse_first(ids, ~well_formed | (subtype < 0), csv, "is not ID_<hex>_<subtype> with a known subtype", "ID")
    label = np.fromiter((_LABEL_VALUE.get(v, -1) for v in values), np.int64, len(values))
    _refuse_first(values, label < 0, csv, "is not 0 or 1", "Label")
    codes, names = pd.factorize(images)
    table = np.full((len(names), len(SUBTYPES)), np.nan)
    keys = codes * len(SUBTYPES) + subtype
    table.flat[keys] = label
    # stage_2_train.csv repeats a few images' rows: identical repeats are harmless, different ones are not.
    _refuse_first(ids, table.flat[keys] != label, csv, "is listed more than once with different labels", "ID")
    rows = {name: k for k, name in enumerate(names) if name not in KNOWN_UNREADABLE}
    return Labels(csv, rows, table)


def _read_label_rows(csv: Path) -> tuple[np.ndarray, np.ndarray]:
    try:
        table = pd.read_csv(csv, dtype={"ID": str, "Label": str}, keep_default_na=False)
    except (OSError, ValueError, pd.errors.ParserError) as exc:
        raise DataError(f"not a readable CSV file ({type(exc).__name__}: {exc})", csv) from None
    if not {"ID", "Label"} <= set(table.columns):
        raise DataError(f"has columns {list(table.columns)}, expected ID,Label", csv)
    return table["ID"].to_numpy(dtype=object), table["Label"].to_numpy(dtype=object)


def _refuse_first(column: np.ndarray, bad: np.ndarray, csv: Path, problem: str, name: str) -> None:
    if bad.any():
        k = int(np.flatnonzero(bad)[0])
        raise DataError(f"line {k + 2}: {name} {column[k]!r} {problem} ({int(bad.sum())} such line(s))", csv)


TASK = RsnaIntracranialHemorrhage()
