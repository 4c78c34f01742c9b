"""An unlabeled pretraining corpus: a folder of CT DICOM slices or of photographs.

Every image is decoded and preprocessed once, into one float16 tensor in memory (the
corpus is small: 1,400 slices at 64 px are 34 MB), so epochs never re-read DICOM.
CT slices become the three HU windows the CT tasks use (soft tissue, lung, bone), one
per channel; photographs go from 0-255 to [0, 1]. Both then match what evaluation feeds.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from benchmark.core.errors import DataError
from benchmark.core.hashing import canonical_hash, file_sha256
from benchmark.core.specs import Preprocessing, Window
from benchmark.data.readers.dicom import iter_dicom_files, read_ct_slice
from benchmark.data.readers.image import IMAGE_SUFFIXES, read_rgb
from benchmark.data.transforms import slice_transform

CT_WINDOWS = (Window(center=40, width=400), Window(center=-600, width=1500), Window(center=400, width=1800))
NATURAL_WINDOW = Window(center=127.5, width=255)


@dataclass(frozen=True)
class Corpus:
    root: Path
    kind: str                   # "dicom" or "image"
    files: tuple[Path, ...]
    fingerprint: str            # sha256 over relative paths and file contents
    preprocessing: Preprocessing
    images: torch.Tensor        # float16 (N, 3, size, size) in [0, 1]

    def __len__(self) -> int:
        return len(self.files)

    @property
    def domain(self) -> str:
        return "ct" if self.kind == "dicom" else "natural"

    def describe(self) -> str:
        what = "CT DICOM slices" if self.kind == "dicom" else "images"
        return f"{self.root.name}: {len(self)} {what}, corpus sha256 {self.fingerprint[:16]}"

    def channel_stats(self) -> tuple[tuple[float, ...], tuple[float, ...]]:
        """Per-channel mean and std over the whole corpus, rounded so the JSON stays readable."""
        x = self.images.to(torch.float64)
        mean = x.mean(dim=(0, 2, 3))
        std = x.std(dim=(0, 2, 3)).clamp_min(1e-3)
        return tuple(round(float(v), 4) for v in mean), tuple(round(float(v), 4) for v in std)

    def summary(self) -> dict:
        return {"folder": self.root.name, "kind": self.kind, "n_images": len(self),
                "fingerprint": self.fingerprint, "preprocessing": self.preprocessing.model_dump(mode="json")}


def find_corpus_files(root: Path) -> tuple[str, list[Path]]:
    """Which kind of corpus ``root`` is, and its files in sorted order; DataError if none or mixed."""
    root = Path(root)
    if not root.is_dir():
        raise DataError("corpus folder does not exist", root)
    dicom = list(iter_dicom_files(root))
    images = sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
                    and not p.name.startswith("._"))
    if dicom and images:
        raise DataError(f"corpus mixes {len(dicom)} DICOM files and {len(images)} images; "
                        "pretrain on one domain per folder", root)
    if not dicom and not images:
        raise DataError(f"corpus holds no DICOM files and no images ({', '.join(IMAGE_SUFFIXES)})", root)
    return ("dicom", dicom) if dicom else ("image", images)


def corpus_preprocessing(kind: str, size: int) -> Preprocessing:
    windows = list(CT_WINDOWS) if kind == "dicom" else [NATURAL_WINDOW]
    return Preprocessing(windows=windows, channels=3, size=size)


def fingerprint(root: Path, files: list[Path]) -> str:
    return canonical_hash([[p.relative_to(root).as_posix(), file_sha256(p)] for p in files])


def load_corpus(root: Path, image_size: int, progress: bool = True) -> Corpus:
    root = Path(root)
    kind, files = find_corpus_files(root)
    prep = corpus_preprocessing(kind, image_size)
    transform = slice_transform(prep)
    images = np.empty((len(files), 3, image_size, image_size), dtype=np.float16)
    for i, path in enumerate(tqdm(files, desc=f"decode {root.name}", unit="img", disable=not progress,
                                  leave=False)):
        raw = read_ct_slice(path)[0] if kind == "dicom" else read_rgb(path)
        images[i] = transform(raw)
    if len(files) < 2:
        raise DataError(f"corpus holds {len(files)} image; contrastive pretraining needs at least 2", root)
    return Corpus(root=root, kind=kind, files=tuple(files), fingerprint=fingerprint(root, files),
                  preprocessing=prep, images=torch.from_numpy(images))
