"""``chestxray14``: the 14 thoracic findings (plus "No Finding") of NIH ChestX-ray14, multilabel.

Data: the NIH Clinical Center's ChestX-ray14 (Wang et al., CVPR 2017),
https://nihcc.app.box.com/v/ChestXray-NIHCC (also on Kaggle as ``nih-chest-xrays/data``).
License: free to use without restriction per the NIH README, with citation of Wang et al.
2017 and acknowledgement of the NIH Clinical Center.

Layout: ``Data_Entry_2017.csv`` (or the 2020 re-release ``Data_Entry_2017_v2020.csv``),
``train_val_list.txt`` and ``test_list.txt`` at the top, the PNGs in ``images/`` or in the
split archives' ``images_001/images/`` … ``images_012/images/``.

Labels are the ``Finding Labels`` tokens (``Cardiomegaly|Effusion``, ``No Finding``) in the
order of the NIH README / Wang et al. Table 1. The official patient-wise split is kept:
``train_val_list.txt`` is the training pool (meta split "train"), ``test_list.txt`` the test
set. Every image must be in exactly one list, the CSV and the folders must name the same
images, and an unknown finding is an error naming its CSV line: nothing is dropped quietly.

Quirk: the images are 8-bit grayscale PNGs, but a few are stored as RGBA; those are converted
to grayscale (their colour channels are equal).
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Iterator

import numpy as np
import pandas as pd

from benchmark.core.errors import DataError
from benchmark.core.specs import Preprocessing, TaskSpec, Window
from benchmark.data.task import Case, Task
from benchmark.evaluation.recipes import study_recipe

FINDINGS = ("Atelectasis", "Cardiomegaly", "Effusion", "Infiltration", "Mass", "Nodule", "Pneumonia",
            "Pneumothorax", "Consolidation", "Edema", "Emphysema", "Fibrosis", "Pleural_Thickening", "Hernia")
NO_FINDING = "No Finding"
CLASS_NAMES = [*FINDINGS, NO_FINDING]
INDEX_FILES = ("Data_Entry_2017.csv", "Data_Entry_2017_v2020.csv")
SPLIT_LISTS = {"train": "train_val_list.txt", "test": "test_list.txt"}
COLUMNS = ("Image Index", "Finding Labels", "Patient ID")
_CONVERTIBLE_MODES = ("RGB", "RGBA", "LA", "P")


@dataclass(frozen=True)
class Entry:
    line: int  # line in the CSV file, header = 1
    findings: str
    patient: str


@dataclass(frozen=True)
class Index:
    csv: Path
    entries: dict[str, Entry]
    splits: dict[str, list[str]]  # image name -> the lists naming it
    images: dict[str, Path]


class ChestXray14(Task):
    spec = TaskSpec(
        name="chestxray14",
        version="1",
        description="Fourteen thoracic findings plus 'No Finding' on frontal chest X-rays, multilabel "
                    "(NIH ChestX-ray14, official patient-wise test split).",
        domain="xray",
        kind="multilabel",
        class_names=CLASS_NAMES,
        metrics=["auc"],
        main_metric="auc",
        license="no restriction on use (NIH README), citing Wang et al. 2017 and acknowledging the NIH Clinical Center",
        reference="https://nihcc.app.box.com/v/ChestXray-NIHCC",
        citation="Wang X., Peng Y., Lu L., Lu Z., Bagheri M., Summers R. M. ChestX-ray8: Hospital-scale Chest X-ray "
                 "Database and Benchmarks on Weakly-Supervised Classification and Localization of Common Thorax "
                 "Diseases. CVPR 2017, 2097-2106.",
        preprocessing=Preprocessing(windows=[Window(center=127.5, width=255)], channels=3, size=64),
        data_layout="DIR/Data_Entry_2017.csv, DIR/train_val_list.txt, DIR/test_list.txt, "
                    "DIR/images/*.png or DIR/images_NNN/images/*.png",
        training=study_recipe("chestxray8"),
    )

    def units(self, root: Path) -> list[Path]:
        _load_index.cache_clear()  # the image folders may have changed since the last look
        index = load_index(root)
        return [index.images[name] for name in sorted(index.images)]

    def read(self, root: Path, unit: Path) -> Iterator[Case]:
        index = load_index(root)
        entry = index.entries.get(unit.name)
        if entry is None:
            raise DataError(f"is not listed in {index.csv.name}", unit)
        yield Case(unit.relative_to(root).as_posix(), entry.patient, read_gray(unit),
                   labels_of(entry, index.csv), {"split": split_of(unit, index)})


def load_index(root: Path) -> Index:
    """The CSV, the split lists and the image files, checked against each other.

    Cached so that reading one image does not re-parse a 112,120-row CSV; :meth:`ChestXray14.units`
    clears the cache, and the key carries the index files' sizes and mtimes.
    """
    csv = _index_csv(root)
    lists = {split: root / name for split, name in SPLIT_LISTS.items()}
    for path in lists.values():
        if not path.is_file():
            raise DataError(f"has no {path.name} (the official split list)", root)
    stamp = tuple((p.stat().st_size, p.stat().st_mtime_ns) for p in (csv, *lists.values()))
    return _load_index(root, csv, stamp)


@lru_cache(maxsize=2)
def _load_index(root: Path, csv: Path, stamp: tuple) -> Index:
    entries = _read_entries(csv)
    splits: dict[str, list[str]] = {}
    for split, name in SPLIT_LISTS.items():
        for image in _read_list(root / name):
            splits.setdefault(image, []).append(split)
    images = _find_images(root)
    missing = sorted(set(entries) - set(images))
    if missing:
        raise DataError(f"{len(missing)} image(s) listed in {csv.name} are not in the image folders, e.g. "
                        f"{', '.join(missing[:5])}", csv)  # the file that names them is the one to fix
    return Index(csv, entries, splits, images)


def _index_csv(root: Path) -> Path:
    for name in INDEX_FILES:
        if (root / name).is_file():
            return root / name
    raise DataError(f"has no {INDEX_FILES[0]} (the image index)", root)


def _read_entries(csv: Path) -> dict[str, Entry]:
    try:
        table = pd.read_csv(csv, dtype=str, keep_default_na=False)
    except (OSError, ValueError, pd.errors.ParserError) as exc:
        raise DataError(f"not a readable CSV file ({type(exc).__name__}: {exc})", csv) from None
    absent = [c for c in COLUMNS if c not in table.columns]
    if absent:
        raise DataError(f"has no column(s) {absent}", csv)
    entries: dict[str, Entry] = {}
    for offset, (image, findings, patient) in enumerate(table[list(COLUMNS)].itertuples(index=False)):
        line = offset + 2
        if image in entries:
            raise DataError(f"line {line}: image {image} is listed again (first on line {entries[image].line})", csv)
        if not patient.strip():
            raise DataError(f"line {line}: image {image} has no Patient ID", csv)
        entries[image] = Entry(line, findings, patient.strip())
    return entries


def _read_list(path: Path) -> list[str]:
    return [line.strip() for line in path.read_text().splitlines() if line.strip()]


def _find_images(root: Path) -> dict[str, Path]:
    images: dict[str, Path] = {}
    for path in sorted(root.rglob("*.png")):
        if path.name.startswith("._"):
            continue
        if path.name in images:
            raise DataError(f"image {path.name} is found twice: {images[path.name]} and {path}", root)
        images[path.name] = path
    if not images:
        raise DataError("holds no *.png images", root)
    return images


def labels_of(entry: Entry, csv: Path) -> np.ndarray:
    tokens = [t.strip() for t in entry.findings.split("|")]
    unknown = [t for t in tokens if t not in CLASS_NAMES]
    if unknown:
        raise DataError(f"line {entry.line}: unknown finding label(s) {unknown}", csv)
    if NO_FINDING in tokens and len(tokens) > 1:
        raise DataError(f"line {entry.line}: '{NO_FINDING}' together with findings {entry.findings!r}", csv)
    labels = np.zeros(len(CLASS_NAMES), dtype=np.int64)
    labels[[CLASS_NAMES.index(t) for t in tokens]] = 1
    return labels


def split_of(image: Path, index: Index) -> str:
    found = index.splits.get(image.name, [])
    if len(found) != 1:
        where = " and ".join(SPLIT_LISTS[s] for s in found) if found else "neither split list"
        raise DataError(f"is in {where}; every image must be in exactly one of "
                        f"{' and '.join(SPLIT_LISTS.values())}", image)
    return found[0]


def read_gray(path: Path) -> np.ndarray:
    """The PNG as float32 (rows, cols) in 0..255."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            if image.mode != "L" and image.mode not in _CONVERTIBLE_MODES:
                raise DataError(f"is a {image.mode!r} image, expected 8-bit grayscale", path)
            return np.asarray(image.convert("L"), dtype=np.float32)
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise DataError(f"not a readable image ({type(exc).__name__}: {exc})", path) from None


TASK = ChestXray14()
