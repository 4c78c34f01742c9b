"""MedMNIST v2 organ tasks ``organamnist``, ``organcmnist``, ``organsmnist``: which of 11
abdominal organs a CT crop shows, in the axial, coronal or sagittal plane.

Data: https://medmnist.com, files on Zenodo (28 px: https://zenodo.org/records/6496656;
MedMNIST+ 64/128/224 px: https://zenodo.org/records/10519652). License: CC BY 4.0 (the
organ sets derive from LiTS 2017 CT scans). ``--data organamnist=DIR`` points at the folder
that holds ``organamnist.npz`` and/or ``organamnist_{64,128,224}.npz``, as downloaded.

Quirks handled here:

* The largest size present is used (224 before 128 before 64 before 28), because a
  downsampled copy can be made from it but detail lost at 28 px cannot be recovered;
  ``MedMNISTOrgan(flag, size=64)`` pins one size instead.
* The images are MedMNIST's 8-bit grey levels after its abdominal window, not Hounsfield
  units; the one 0-255 window keeps them as published.
* The npz files carry no patient ids, so each image is its own group. The official
  splits are by CT scan (115 / 16 / 70 LiTS scans for train / val / test) and are kept in
  ``meta["split"]``, so the official test set never shares a patient with the pool; the
  budget splits ctbench draws inside the pool are by image, so their validation images
  may come from training patients.
* Labels are stored as (N, 1); the class order is MedMNIST's ``INFO[flag]["label"]``.
"""
from __future__ import annotations

import zipfile
import zlib
from pathlib import Path
from typing import Iterator, Optional

import numpy as np

from benchmark.core.errors import DataError
from benchmark.core.specs import Preprocessing, TaskSpec, Window
from benchmark.data.task import Case, Task
from benchmark.evaluation.recipes import study_recipe

# medmnist/info.py, INFO["organamnist"|"organcmnist"|"organsmnist"]["label"], identical for the three.
CLASS_NAMES = ["bladder", "femur-left", "femur-right", "heart", "kidney-left", "kidney-right", "liver",
               "lung-left", "lung-right", "pancreas", "spleen"]
SIZES = (224, 128, 64, 28)  # largest first: the default pick
SPLITS = ("train", "val", "test")
PLANES = {"organamnist": "axial", "organcmnist": "coronal", "organsmnist": "sagittal"}


def npz_name(flag: str, size: int) -> str:
    """MedMNIST's file naming: the 28 px original has no size suffix."""
    return f"{flag}.npz" if size == 28 else f"{flag}_{size}.npz"


class MedMNISTOrgan(Task):
    """One of the Organ{A,C,S}MNIST sets; units are (file, split) pairs named ``<file>.npz/<split>``."""

    def __init__(self, flag: str, size: Optional[int] = None):
        if size is not None and size not in SIZES:
            raise ValueError(f"MedMNIST has no {size} px files; sizes are {SIZES}")
        self.flag, self.size = flag, size
        self.spec = TaskSpec(
            name=flag,
            version="1",
            description=f"Which of 11 abdominal organs a {PLANES[flag]} CT crop shows (MedMNIST v2 "
                        f"{flag}, official splits).",
            domain="ct",
            kind="classification",
            class_names=list(CLASS_NAMES),
            metrics=["accuracy", "balanced_accuracy", "f1_macro", "auc"],
            main_metric="accuracy",  # MedMNIST's own leaderboard reports ACC and AUC, ACC first
            default_scales=[1.0, 0.1, 0.01],
            license="CC BY 4.0",
            reference="https://medmnist.com/",
            citation="Yang J., Shi R., Wei D., Liu Z., Zhao L., Ke B., Pfister H., Ni B. MedMNIST v2 - A large-scale "
                     "lightweight benchmark for 2D and 3D biomedical image classification. Scientific Data 10:41, 2023.",
            preprocessing=Preprocessing(windows=[Window(center=127.5, width=255)], channels=3, size=64),
            data_layout=f"DIR/{flag}[_64|_128|_224].npz with train/val/test_images (N, H, W) uint8 and "
                        "_labels (N, 1); the largest size present is read",
            training=study_recipe("chestxray8", class_weights=None),  # the study's recipe for a 2-D classification of this size
        )

    def npz_file(self, root: Path) -> Path:
        names = [npz_name(self.flag, s) for s in ([self.size] if self.size else SIZES)]
        for name in names:
            if (root / name).is_file():
                return root / name
        raise DataError(f"holds none of {', '.join(names)}", root)

    def units(self, root: Path) -> list[Path]:
        """The chosen file's three splits; an unreadable archive is one problem, not three."""
        path = self.npz_file(root)
        _archive(path).close()
        return [path / split for split in SPLITS]

    def read(self, root: Path, unit: Path) -> Iterator[Case]:
        path, split = unit.parent, unit.name
        images, labels = _load_split(path, split, _size_of(path.name, self.flag))
        for i, (image, label) in enumerate(zip(images, labels)):
            yield Case(f"{path.name}/{split}/{i}", f"{split}-{i:06d}", image.astype(np.float32), int(label),
                       {"split": split})


def _size_of(name: str, flag: str) -> int:
    return next(s for s in SIZES if npz_name(flag, s) == name)


def _load_split(path: Path, split: str, size: int) -> tuple[np.ndarray, np.ndarray]:
    """One split's images and flat labels, checked against the file's size and the class set."""
    images, labels = (_member(path, f"{split}_{kind}") for kind in ("images", "labels"))
    if images.ndim != 3 or images.shape[1:] != (size, size):
        raise DataError(f"{split}_images has shape {images.shape}, expected (N, {size}, {size})", path)
    if images.dtype != np.uint8:
        raise DataError(f"{split}_images is {images.dtype}, expected uint8", path)
    if labels.shape not in ((len(images), 1), (len(images),)):
        raise DataError(f"{split}_labels has shape {labels.shape}, expected ({len(images)}, 1) "
                        f"to match {split}_images", path)
    labels = labels.reshape(-1)
    outside = np.flatnonzero((labels < 0) | (labels >= len(CLASS_NAMES)))
    if outside.size:
        raise DataError(f"{split}_labels[{outside[0]}] = {labels[outside[0]]} is outside the "
                        f"{len(CLASS_NAMES)} organ classes ({outside.size} such labels)", path)
    return images, labels.astype(np.int64)


def _archive(path: Path):
    """The npz archive, opened (its directory only) and checked to hold MedMNIST's six arrays."""
    try:
        npz = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise DataError(f"not a readable npz file ({type(exc).__name__}: {exc})", path) from None
    if not isinstance(npz, np.lib.npyio.NpzFile):
        raise DataError("holds a single array, not an npz archive of train/val/test arrays", path)
    missing = [f"{split}_{kind}" for split in SPLITS for kind in ("images", "labels")
               if f"{split}_{kind}" not in npz.files]
    if missing:
        npz.close()
        raise DataError(f"has no array(s) {', '.join(missing)} (holds {', '.join(sorted(npz.files))})", path)
    return npz


def _member(path: Path, key: str) -> np.ndarray:
    with _archive(path) as npz:
        try:
            return npz[key]
        except (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error) as exc:
            raise DataError(f"array {key!r} is unreadable ({type(exc).__name__}: {exc})", path) from None

TASKS = [MedMNISTOrgan(flag) for flag in PLANES]
