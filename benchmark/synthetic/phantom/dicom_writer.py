"""CT Image Storage files, one per slice, as a scanner would export them.

Every value is a function of the rendered slice and the UID namespace; there
is no clock, no random state and no library version in the bytes, so the same
configuration always yields byte-identical files.
"""
from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
from pydicom.dataset import FileDataset, FileMetaDataset
from pydicom.uid import UID, ExplicitVRLittleEndian

from benchmark.synthetic.phantom.config import BODY_PART, REGIONS
from benchmark.synthetic.phantom.hounsfield import REGION_WINDOW
from benchmark.synthetic.phantom.render import RenderedSlice

CT_IMAGE_STORAGE = UID("1.2.840.10008.5.1.4.1.1.2")
RESCALE_INTERCEPT = -1024
_DATE, _TIME = "20000101", "120000"


def make_uid(*parts: object) -> UID:
    """Deterministic UID under the UUID-derived root 2.25 (ISO/IEC 9834-8)."""
    digest = hashlib.sha256("/".join(str(p) for p in parts).encode("utf-8")).digest()
    return UID("2.25." + str(int.from_bytes(digest[:16], "big")))


_IMPLEMENTATION_UID = make_uid("ctbench", "phantom", "implementation")


def _ds(value: float) -> str:
    """Decimal String within the 16-character limit."""
    text = f"{value:.6f}".rstrip("0").rstrip(".")
    return text if text not in ("-0", "") else "0"


def _window(sl: RenderedSlice) -> tuple[int, int]:
    if sl.series.anatomy == "neck":
        return 40, 400
    return REGION_WINDOW[sl.series.region]


def slice_dataset(sl: RenderedSlice, namespace: str) -> FileDataset:
    """The complete DICOM object of one rendered slice."""
    p, s = sl.patient, sl.series
    sop_uid = make_uid(namespace, p.patient_id, s.region, sl.index)
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CT_IMAGE_STORAGE
    meta.MediaStorageSOPInstanceUID = sop_uid
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = _IMPLEMENTATION_UID
    meta.ImplementationVersionName = "CTBENCH_PHANTOM"
    ds = FileDataset(None, {}, file_meta=meta, preamble=b"\0" * 128)
    _identity(ds, sl, namespace, sop_uid)
    _geometry(ds, sl)
    _pixels(ds, sl)
    return ds


def _identity(ds: FileDataset, sl: RenderedSlice, namespace: str, sop_uid: UID) -> None:
    p, s = sl.patient, sl.series
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
    ds.SOPClassUID = CT_IMAGE_STORAGE
    ds.SOPInstanceUID = sop_uid
    ds.StudyDate = ds.SeriesDate = ds.ContentDate = _DATE
    ds.StudyTime = ds.SeriesTime = ds.ContentTime = _TIME
    ds.AccessionNumber = ""
    ds.Modality = "CT"
    ds.Manufacturer = "ctbench phantom"
    ds.ManufacturerModelName = "procedural"
    ds.ReferringPhysicianName = ""
    ds.StudyDescription = "Synthetic CT phantom"
    ds.SeriesDescription = f"{BODY_PART[s.region]} {s.anatomy} {p.phase.replace('_', ' ')}"
    ds.PatientName = p.name
    ds.PatientID = p.patient_id
    ds.PatientBirthDate = ""
    ds.PatientSex = "O"
    if p.phase != "non_contrast":
        ds.ContrastBolusAgent = "IODINATED CONTRAST"
    ds.BodyPartExamined = BODY_PART[s.region]
    ds.SliceThickness = _ds(s.thickness)
    ds.KVP = "120"
    ds.SpacingBetweenSlices = _ds(s.thickness)
    ds.ConvolutionKernel = "SHARP" if p.kernel_cutoff > 0.85 else "STANDARD" if p.kernel_cutoff > 0.7 else "SOFT"
    ds.PatientPosition = "HFS"
    ds.StudyInstanceUID = make_uid(namespace, p.patient_id, "study")
    ds.SeriesInstanceUID = make_uid(namespace, p.patient_id, s.region, "series")
    ds.StudyID = "1"
    ds.SeriesNumber = REGIONS.index(s.region) + 1
    ds.InstanceNumber = sl.index + 1
    ds.FrameOfReferenceUID = make_uid(namespace, p.patient_id, "frame-of-reference")


def _geometry(ds: FileDataset, sl: RenderedSlice) -> None:
    g = sl.grid
    ds.ImagePositionPatient = [_ds(g.xs[0]), _ds(g.ys[0]), _ds(sl.z)]
    ds.ImageOrientationPatient = ["1", "0", "0", "0", "1", "0"]
    ds.PositionReferenceIndicator = ""
    ds.SliceLocation = _ds(sl.z)
    ds.PixelSpacing = [_ds(g.spacing), _ds(g.spacing)]


def _pixels(ds: FileDataset, sl: RenderedSlice) -> None:
    rows, cols = sl.hu.shape
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows, ds.Columns = rows, cols
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 16, 16, 15
    ds.PixelRepresentation = 1
    centre, width = _window(sl)
    ds.WindowCenter, ds.WindowWidth = str(centre), str(width)
    ds.RescaleIntercept = str(RESCALE_INTERCEPT)
    ds.RescaleSlope = "1"
    ds.RescaleType = "HU"
    stored = sl.hu.astype(np.int32) - RESCALE_INTERCEPT
    ds.PixelData = np.clip(stored, -32768, 32767).astype("<i2").tobytes()


def write_series(directory: Path, slices: list[RenderedSlice], namespace: str) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for sl in slices:
        path = directory / f"IM-{sl.index + 1:04d}.dcm"
        ds = slice_dataset(sl, namespace)
        try:
            ds.save_as(path, enforce_file_format=True)  # pydicom >= 3
        except TypeError:
            ds.save_as(path, write_like_original=False)  # pydicom 2.x
        paths.append(path)
    return paths
