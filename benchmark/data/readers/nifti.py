"""NIfTI volumes and masks with nibabel, as (X, Y, Z) arrays plus voxel spacing.

Image and mask are checked against each other here, once, because a shape or
affine mismatch would otherwise surface as a silently misaligned mask.

A ``.nii.gz`` is read to the end of its gzip stream, because that is where gzip keeps its
CRC: nibabel stops after the voxels, so a flipped byte inside the stream would otherwise come
back as silently wrong voxels, and a file missing its last bytes would read as whole.
"""
from __future__ import annotations

import gzip
import zlib
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np

from benchmark.core.errors import DataError
from benchmark.data.readers.failure import one_line

_HEADER_SIZES = {348: nib.Nifti1Image, 540: nib.Nifti2Image}  # sizeof_hdr, the first four bytes


@dataclass(frozen=True)
class Volume:
    path: Path
    array: np.ndarray  # (X, Y, Z)
    affine: np.ndarray
    spacing: tuple[float, float, float]


def read_volume(path: Path, dtype=np.float32) -> Volume:
    try:
        image, array = _read_gzipped(path, dtype) if str(path).endswith(".gz") else _read_plain(path, dtype)
    except DataError:
        raise
    except Exception as exc:  # untrusted bytes: nibabel, gzip and zlib raise many types, all about this file
        raise DataError(f"not a readable NIfTI file ({one_line(exc)})", path) from None
    if array.ndim != 3:
        raise DataError(f"expected a 3-D volume, found shape {array.shape}", path)
    spacing = tuple(float(s) for s in image.header.get_zooms()[:3])
    return Volume(Path(path), array, image.affine, spacing)  # type: ignore[arg-type]


def _read_plain(path: Path, dtype) -> tuple[nib.Nifti1Image, np.ndarray]:
    image = nib.load(str(path))
    return image, np.asarray(image.dataobj, dtype=dtype)


def _read_gzipped(path: Path, dtype) -> tuple[nib.Nifti1Image, np.ndarray]:
    """The image and its voxels, then the rest of the stream, so that gzip checks its CRC and length."""
    try:
        with gzip.open(path, "rb") as stream:
            klass = _nifti_class(stream.read(4), path)
            stream.seek(0)
            image = klass.from_stream(stream)
            array = np.asarray(image.dataobj, dtype=dtype)
            while stream.read(1 << 20):  # usually nothing is left but the trailer
                pass
    except (gzip.BadGzipFile, zlib.error, EOFError) as exc:
        raise DataError(f"not a readable NIfTI file: corrupt or cut-short gzip ({one_line(exc)})", path) from None
    return image, array


def _nifti_class(head: bytes, path: Path) -> type:
    """Nifti1Image or Nifti2Image, from the header size field in either byte order."""
    if len(head) < 4:
        raise DataError("not a readable NIfTI file: empty, or ends before its header", path)
    for order in ("little", "big"):
        klass = _HEADER_SIZES.get(int.from_bytes(head, order))
        if klass is not None:
            return klass
    raise DataError(f"not a readable NIfTI file: gzip of something else (header size field "
                    f"{int.from_bytes(head, 'little')}, not NIfTI-1/2's 348 or 540)", path)


def require_foreground(mask: Volume, task: str) -> None:
    """Refuse an all-background mask where every case of ``task`` has labelled anatomy.

    Slice-based tasks keep only the slices with foreground, so such a mask would not fail:
    its volume would just vanish from the dataset. Every training case of the public
    datasets read with this (LiTS, MSD, KiTS, BraTS) has foreground, so an empty one is a
    wrong, truncated or misaligned file, and the user is told which.
    """
    if not mask.array.any():
        raise DataError(f"mask holds no foreground (every voxel is 0), but every {task} case has some; "
                        "is it the right file?", mask.path)


def read_labelled_pair(image_path: Path, mask_path: Path, labels: set[int],
                       foreground_of: str | None = None) -> tuple[Volume, Volume]:
    """Image and mask, checked against each other and the label set; with ``foreground_of``
    (a task name) an empty mask is refused too (see :func:`require_foreground`)."""
    image = read_volume(image_path)
    mask = read_volume(mask_path)
    if image.array.shape != mask.array.shape:
        raise DataError(f"mask shape {mask.array.shape} differs from image {image_path.name} shape "
                        f"{image.array.shape}", mask_path)
    if not np.allclose(image.affine, mask.affine, atol=1e-3):
        raise DataError(f"mask affine differs from image {image_path.name}'s", mask_path)
    if not np.array_equal(mask.array, np.round(mask.array)):
        raise DataError("mask holds non-integer values", mask_path)
    found = set(np.unique(mask.array).astype(int).tolist())
    if not found <= labels:
        raise DataError(f"mask labels {sorted(found - labels)} are outside the label set {sorted(labels)}", mask_path)
    if foreground_of:
        require_foreground(mask, foreground_of)
    return image, Volume(mask.path, mask.array.astype(np.uint8), mask.affine, mask.spacing)
