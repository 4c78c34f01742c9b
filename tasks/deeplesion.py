"""``deeplesion-lesion-type``: the coarse type of the lesion on a DeepLesion key slice
(8 classes: bone, abdomen, mediastinum, liver, lung, kidney, soft tissue, pelvis).

Data: NIH Clinical Center, https://nihcc.app.box.com/v/DeepLesion (``Images_png_01.zip`` …
``Images_png_56.zip`` and ``DL_info.csv``); free to download without a data-use agreement,
no formal license file: its README asks users to cite Yan et al., J. Med. Imaging 5(3)
036501, 2018. ``--data deeplesion-lesion-type=DIR`` points at the folder holding
``DL_info.csv`` and ``Images_png/<patient>_<study>_<series>/<slice:03d>.png``.

Quirks handled here:

* Slices are 16-bit PNGs with HU = pixel - 32768. An 8-bit PNG (a re-export) would
  silently give HU near -32768, so anything but a 16-bit greyscale PNG is refused by name.
* ``Coarse_lesion_type`` is -1 (unlabelled) for every lesion outside the official val and
  test sets: only those were typed by hand. Unlabelled rows are left out, so the task's
  pool is the official val set and its test set the official test set (``meta["split"]``).
* Several lesions can share a key slice. One case is made per key slice; a slice whose
  labelled lesions disagree on the type has no single answer and is left out, like the
  unlabelled rows. Unlabelled lesions beside labelled ones do not change the label.
* ``Possibly_noisy`` rows are kept: the flag marks uncertain RECIST marks, not types.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Iterator

import numpy as np

from benchmark.core.errors import DataError
from benchmark.core.specs import Preprocessing, TaskSpec, Window
from benchmark.data.readers.table import read_index
from benchmark.data.task import Case, Task
from benchmark.evaluation.recipes import study_recipe

# DL_info.csv's Coarse_lesion_type codes 1..8, in order, as the DeepLesion README (NIH Box folder) lists them.
CLASS_NAMES = ["bone", "abdomen", "mediastinum", "liver", "lung", "kidney", "soft_tissue", "pelvis"]
UNLABELLED = -1
SPLITS = {1: "train", 2: "val", 3: "test"}  # Train_Val_Test
HU_OFFSET = 32768
INDEX_FILE = "DL_info.csv"
IMAGES = "Images_png"
COLUMNS = ("File_name", "Patient_index", "Study_index", "Series_ID", "Key_slice_index", "Coarse_lesion_type",
           "Slice_range", "Spacing_mm_px_", "Image_size", "Train_Val_Test")
SIXTEEN_BIT_MODES = ("I;16", "I;16B", "I;16L", "I")  # Pillow's names for a 16-bit greyscale PNG


@dataclass(frozen=True)
class KeySlice:
    folder: str  # <patient>_<study>_<series>, the folder under Images_png
    index: int  # Key_slice_index, the PNG's number
    patient: str
    label: int  # 0-based class index
    split: str
    spacing: tuple[float, float]
    size: tuple[int, int]
    slice_range: tuple[int, int]


class DeepLesionLesionType(Task):
    spec = TaskSpec(
        name="deeplesion-lesion-type",
        version="1",
        description="Coarse type of the lesion on a DeepLesion key slice (8 classes, official val/test sets).",
        domain="ct",
        kind="classification",
        class_names=list(CLASS_NAMES),
        metrics=["auc", "balanced_accuracy", "accuracy", "f1_macro"],
        main_metric="auc",  # threshold-free and fair to the rare types (pelvis, kidney)
        default_scales=[1.0, 0.5, 0.1],  # the pool is the official val set, ~700 patients: 1 % is too few
        license="no formal licence: free download from the NIH Clinical Center without a data-use agreement; "
                "its README asks users to cite Yan et al. 2018",
        reference="https://nihcc.app.box.com/v/DeepLesion",
        citation="Yan K., Wang X., Lu L., Summers R. M. DeepLesion: automated mining of large-scale lesion "
                 "annotations and universal lesion detection with deep learning. Journal of Medical Imaging 5(3):036501, "
                 "2018.",
        preprocessing=Preprocessing(
            windows=[Window(center=40, width=400), Window(center=-600, width=1500), Window(center=400, width=1800)],
            channels=3, size=64),
        data_layout="DIR/DL_info.csv and DIR/Images_png/<patient>_<study>_<series>/<slice:03d>.png "
                    "(16-bit, HU = pixel - 32768)",
        training=study_recipe("chestxray8", class_weights=None),  # the study's recipe for a 2-D classification of this size
    )

    def units(self, root: Path) -> list[Path]:
        folders = sorted(_key_slices(root))
        if not folders:
            raise DataError(f"lists no key slice with a coarse lesion type in {INDEX_FILE}", root)
        return [root / IMAGES / folder for folder in folders]

    def read(self, root: Path, unit: Path) -> Iterator[Case]:
        for key in _key_slices(root).get(unit.name, []):
            image = _stack(unit, key, self.spec.preprocessing.neighbours)
            yield Case(f"{IMAGES}/{key.folder}/{key.index:03d}.png", key.patient, image, key.label,
                       {"spacing": key.spacing, "split": key.split})


def _stack(folder: Path, key: KeySlice, neighbours: int) -> np.ndarray:
    """The key slice in HU, or with ``neighbours`` the slices around it, clamped to the series' range."""
    low, high = key.slice_range
    picks = [min(max(key.index + d, low), high) for d in range(-neighbours, neighbours + 1)]
    slices = [read_png_hu(folder / f"{k:03d}.png") for k in picks]
    key_slice = slices[neighbours]
    if key_slice.shape not in (key.size, key.size[::-1]):
        raise DataError(f"is {key_slice.shape[1]}x{key_slice.shape[0]} pixels, {INDEX_FILE} says "
                        f"{key.size[0]}x{key.size[1]}", folder / f"{key.index:03d}.png")
    return slices[0] if neighbours == 0 else np.stack(slices)


def read_png_hu(path: Path) -> np.ndarray:
    """A DeepLesion slice in HU; Pillow keeps the 16 bits (mode I;16) that imageio's default may not."""
    from PIL import Image, UnidentifiedImageError

    if not path.is_file():
        raise DataError("is missing (listed in DL_info.csv)", path)
    try:
        with Image.open(path) as image:
            if image.format != "PNG" or image.mode not in SIXTEEN_BIT_MODES:
                raise DataError(f"is a {image.format} image of mode {image.mode!r}, not a 16-bit greyscale PNG "
                                f"(DeepLesion stores HU + {HU_OFFSET} in 16 bits)", path)
            pixels = np.asarray(image)
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        raise DataError(f"not a readable PNG ({type(exc).__name__}: {exc})", path) from None
    return pixels.astype(np.float32) - HU_OFFSET


def _key_slices(root: Path) -> dict[str, list[KeySlice]]:
    index = root / INDEX_FILE
    if not index.is_file():
        raise DataError(f"has no {INDEX_FILE} (DeepLesion's annotation table)", root)
    stat = os.stat(index)
    return _parse_index(index, stat.st_mtime_ns, stat.st_size)


@lru_cache(maxsize=4)
def _parse_index(index: Path, mtime_ns: int, size: int) -> dict[str, list[KeySlice]]:
    """Labelled key slices by series folder; cached, as every unit needs the 32k-row table."""
    table = read_index(index, COLUMNS)
    by_file: dict[str, list[tuple[int, dict]]] = {}
    for row_number, row in enumerate(table.to_dict("records"), start=2):  # line 1 is the header
        by_file.setdefault(row["File_name"], []).append((row_number, row))
    slices: dict[str, list[KeySlice]] = {}
    for file_name, rows in by_file.items():
        key = _key_slice(index, file_name, rows)
        if key is not None:
            slices.setdefault(key.folder, []).append(key)
    return {folder: sorted(keys, key=lambda k: k.index) for folder, keys in sorted(slices.items())}


def _key_slice(index: Path, file_name: str, rows: list[tuple[int, dict]]):
    """One key slice from its lesions' rows, or None when it has no single labelled type."""
    types, splits = set(), set()
    for row_number, row in rows:
        code = _int(row, "Coarse_lesion_type", index, row_number)
        if code != UNLABELLED and not 1 <= code <= len(CLASS_NAMES):
            raise DataError(f"line {row_number}: Coarse_lesion_type {code} is not -1 or 1..{len(CLASS_NAMES)}", index)
        split = _int(row, "Train_Val_Test", index, row_number)
        if split not in SPLITS:
            raise DataError(f"line {row_number}: Train_Val_Test {split} is not 1, 2 or 3", index)
        types |= {code} - {UNLABELLED}
        splits.add(split)
    row_number, row = rows[0]
    if len(splits) > 1:
        raise DataError(f"line {row_number}: the lesions of {file_name} are in different official splits", index)
    if len(types) != 1:
        return None
    return KeySlice(folder=_folder_of(file_name, row, index, row_number),
                    index=_int(row, "Key_slice_index", index, row_number),
                    patient=f"{_int(row, 'Patient_index', index, row_number):06d}",
                    label=types.pop() - 1,
                    split=SPLITS[splits.pop()],
                    spacing=_pair(row, "Spacing_mm_px_", float, index, row_number)[::-1],  # x, y -> rows, cols
                    size=_pair(row, "Image_size", int, index, row_number),
                    slice_range=_pair(row, "Slice_range", int, index, row_number))


def _folder_of(file_name: str, row: dict, index: Path, row_number: int) -> str:
    """``000001_01_01_109.png`` lives in ``Images_png/000001_01_01/109.png``; the ids must agree."""
    ids = [_int(row, c, index, row_number) for c in ("Patient_index", "Study_index", "Series_ID", "Key_slice_index")]
    expected = "{:06d}_{:02d}_{:02d}_{:03d}.png".format(*ids)
    if file_name != expected:
        raise DataError(f"line {row_number}: File_name {file_name} does not match its patient, study, series "
                        f"and key slice columns ({expected})", index)
    return file_name.rsplit("_", 1)[0]


def _int(row: dict, column: str, index: Path, row_number: int) -> int:
    try:
        return int(float(row[column]))
    except ValueError:
        raise DataError(f"line {row_number}: {column} {row[column]!r} is not a number", index) from None


def _pair(row: dict, column: str, kind, index: Path, row_number: int) -> tuple:
    """The first two of a quoted list such as Spacing_mm_px_ ``"0.78, 0.78, 5"``."""
    try:
        values = [kind(float(v)) for v in row[column].split(",")]
    except ValueError:
        values = []
    if len(values) < 2:
        raise DataError(f"line {row_number}: {column} {row[column]!r} is not a list of numbers", index)
    return values[0], values[1]


TASK = DeepLesionLesionType()
