"""The CT phantom: Hounsfield values, noise texture, and the bytes it writes."""
from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest
from scipy import ndimage

from benchmark.synthetic.phantom import (
    BODY_PART,
    GENERATOR_VERSION,
    REGIONS,
    PhantomConfig,
    dataset_key,
    generate_dataset,
    render_slice,
)
from benchmark.synthetic.phantom.hounsfield import HU_MIN, Tissue, hu_range
from benchmark.synthetic.phantom.noise import ct_noise, radial_nps
from benchmark.synthetic.phantom.patient import LIVER_FOV_MM, make_patient
from benchmark.synthetic.phantom.render import RenderedSlice

SMALL = PhantomConfig(seed=3, n_patients=3, n_corpus_patients=2, matrix=64, slices_per_series=3,
                      n_lits_volumes=3, lits_slices=6)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    return generate_dataset(tmp_path_factory.mktemp("phantom") / "ds", SMALL, workers=2)


def _files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


# ---------------------------------------------------------------- intensities
@pytest.mark.parametrize("noise,tolerance", [(False, 6.0), (True, 14.0)])
@pytest.mark.parametrize("region", REGIONS)
def test_tissue_means_fall_in_their_hu_ranges(region, noise, tolerance):
    config = PhantomConfig(seed=1, matrix=128)
    checked = 0
    for patient in range(3):
        sl = render_slice(config, patient, region, 2, noise=noise)
        for code in np.unique(sl.labels):
            core = ndimage.binary_erosion(sl.labels == code, iterations=2)
            if core.sum() < 25:
                continue
            lo, hi = hu_range(Tissue(int(code)), sl.patient.phase)
            lo = max(lo, HU_MIN)
            mean = float(sl.hu[core].mean())
            assert lo - tolerance <= mean <= hi + tolerance, (Tissue(int(code)).name, mean, lo, hi)
            checked += 1
    assert checked >= 6


def test_regions_show_their_anatomy():
    config = PhantomConfig(seed=2)
    expected = {"head_neck": {Tissue.CORTICAL_BONE}, "thorax": {Tissue.LUNG}, "abdomen": {Tissue.LIVER},
                "extremities": {Tissue.MARROW}, "hip_pelvis": {Tissue.BLADDER, Tissue.CANCELLOUS_BONE},
                "spine": {Tissue.CSF}}
    for region, tissues in expected.items():
        labels = render_slice(config, 0, region, 1, noise=False).labels
        assert tissues & set(np.unique(labels).tolist()), region


def test_lesions_are_hypodense_to_liver():
    config = PhantomConfig(seed=0)
    found = 0
    for patient in range(6):
        sl = render_slice(config, patient, "abdomen", 2, noise=False)
        lesion = ndimage.binary_erosion(sl.labels == Tissue.LESION)
        if lesion.sum() < 3:
            continue
        liver = ndimage.binary_erosion(sl.labels == Tissue.LIVER, iterations=2)
        assert sl.hu[lesion].mean() < sl.hu[liver].mean() - 15
        found += 1
    assert found >= 1


# ---------------------------------------------------------------- noise
def test_noise_power_spectrum_is_ramp_like_not_white():
    config = PhantomConfig(seed=4, matrix=128)
    fields = []
    for k in range(6):
        noisy = render_slice(config, 0, "abdomen", k, noise=True)
        clean = render_slice(config, 0, "abdomen", k, noise=False)
        fields.append(noisy.hu.astype(float) - clean.hu.astype(float))
    freqs, nps = radial_nps(np.stack(fields))
    low, mid = freqs < 0.035, (freqs > 0.06) & (freqs < 0.2)  # cycles/pixel
    assert nps[mid].mean() > 2 * nps[low].mean()
    # white noise of the same variance would be flat: the shape, not the level, is tested
    white = radial_nps(np.random.default_rng(0).standard_normal((6, 128, 128)))[1]
    assert white[mid].mean() < 2 * white[low].mean()


@pytest.mark.parametrize("sigma", [8.0, 30.0])
def test_noise_has_the_requested_dose_level(sigma):
    rng = np.random.default_rng(0)
    stack = np.stack([ct_noise(rng, 128, sigma, 0.8) for _ in range(8)])
    assert stack.std() == pytest.approx(sigma, rel=0.1)


def _image_noise(config: PhantomConfig, patient: int, region: str, tissue: Tissue) -> tuple[float, np.ndarray, RenderedSlice]:
    """σ of (noisy - noise-free) inside ``tissue``: the dose level a reader measures in an ROI."""
    noisy = render_slice(config, patient, region, 1, noise=True)
    clean = render_slice(config, patient, region, 1, noise=False)
    inside = ndimage.binary_erosion(noisy.labels == tissue, iterations=2)
    return float((noisy.hu.astype(float) - clean.hu)[inside].std()), inside, noisy


def test_noise_follows_the_dose_of_each_body_region():
    """Head protocols: σ 3-6 HU in brain; trunk 10-30 HU (literature ranges; issue 22)."""
    config = PhantomConfig(seed=0)
    for patient in range(6):
        sl = render_slice(config, patient, "head_neck", 1, noise=False)
        if sl.series.anatomy == "head":
            sigma, _, _ = _image_noise(config, patient, "head_neck", Tissue.WHITE_MATTER)
            assert 2.5 < sigma < 6.5, (patient, sigma)
        sigma, _, _ = _image_noise(config, patient, "abdomen", Tissue.LIVER)
        assert 8.0 < sigma < 33.0, (patient, sigma)


def test_grey_and_white_matter_differ_by_more_than_the_noise():
    config = PhantomConfig(seed=0)
    checked = 0
    for patient in range(8):
        if render_slice(config, patient, "head_neck", 1, noise=False).series.anatomy != "head":
            continue
        sigma, white, sl = _image_noise(config, patient, "head_neck", Tissue.WHITE_MATTER)
        grey = ndimage.binary_erosion(sl.labels == Tissue.GREY_MATTER)
        assert sl.hu[grey].mean() - sl.hu[white].mean() > sigma, patient
        checked += 1
    assert checked >= 3


def test_lits_series_are_liver_targeted_with_lesions_of_several_pixels():
    """The LiTS cohort's field of view is centred on the liver, so a lesion spans 2-8 px at the
    demo's 64 px (1-3 px on a whole-abdomen field of view could not be learned)."""
    config = PhantomConfig(seed=0, n_lits_volumes=8, lits_slices=8)
    radii = []
    for n in range(8):
        p = make_patient(config, "lits", n)
        series = p.series["abdomen"]
        assert series.target == "liver" and LIVER_FOV_MM[0] <= series.fov <= LIVER_FOV_MM[1]
        labels = render_slice(config, n, "abdomen", 4, cohort="lits", noise=False).labels
        liver = np.isin(labels, [Tissue.LIVER, Tissue.LESION])
        cols = np.nonzero(liver)[1]
        assert liver.mean() > 0.05 and abs(cols.mean() - labels.shape[1] / 2) < labels.shape[1] / 4, n
        radii += [lesion.radius / (series.fov / 64) for lesion in p.lesions]
    assert radii and 2.0 <= min(radii) and max(radii) <= 8.5


# ---------------------------------------------------------------- DICOM
def test_dicom_tags_round_trip(dataset):
    manifest = json.loads((dataset / "phantom.json").read_text())
    entry = manifest["patients"][0]
    series = next(s for s in entry["series"] if s["region"] == "abdomen")
    path = dataset / series["path"] / "IM-0002.dcm"
    ds = pydicom.dcmread(path)
    assert ds.file_meta.TransferSyntaxUID == pydicom.uid.ExplicitVRLittleEndian
    assert ds.SOPClassUID == "1.2.840.10008.5.1.4.1.1.2"
    assert ds.Modality == "CT"
    assert ds.BodyPartExamined == "ABDOMEN"
    assert ds.PatientID == entry["patient_id"] == "PHANTOM-P0000"
    assert str(ds.PatientName) == "Phantom^P0000"
    assert [float(v) for v in ds.PixelSpacing] == pytest.approx([series["pixel_spacing_mm"]] * 2, abs=1e-5)
    assert float(ds.RescaleIntercept) == -1024 and float(ds.RescaleSlope) == 1
    assert ds.PixelRepresentation == 1 and ds.BitsStored == 16
    hu = ds.pixel_array.astype(float) * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
    expected = render_slice(SMALL, 0, "abdomen", 1).hu
    assert np.abs(hu - expected).max() <= 1.0


def test_series_geometry_is_consistent(dataset):
    for part in BODY_PART.values():
        files = sorted((dataset / "dicom" / "PHANTOM-P0001" / part).glob("*.dcm"))
        headers = sorted((pydicom.dcmread(f, stop_before_pixels=True) for f in files),
                         key=lambda d: int(d.InstanceNumber))
        assert len(headers) == SMALL.slices_per_series
        z = np.array([float(d.ImagePositionPatient[2]) for d in headers])
        spacing = float(headers[0].SpacingBetweenSlices)
        assert np.allclose(np.abs(np.diff(z)), spacing, atol=1e-3)
        assert np.allclose([float(d.SliceLocation) for d in headers], z, atol=1e-3)
        assert len({d.SeriesInstanceUID for d in headers}) == 1
        assert len({d.SOPInstanceUID for d in headers}) == len(headers)
        assert [float(v) for v in headers[0].ImageOrientationPatient] == [1, 0, 0, 0, 1, 0]


def test_series_of_one_patient_share_a_study(dataset):
    uids = {pydicom.dcmread(next((dataset / "dicom" / "PHANTOM-P0002" / part).glob("*.dcm")),
                            stop_before_pixels=True).StudyInstanceUID for part in BODY_PART.values()}
    assert len(uids) == 1


# ---------------------------------------------------------------- NIfTI
def test_lits_pairs(dataset):
    manifest = json.loads((dataset / "phantom.json").read_text())
    with_lesion = 0
    for n, case in enumerate(manifest["lits"]):
        volume = nib.load(dataset / "lits" / f"volume-{n}.nii")
        mask = nib.load(dataset / "lits" / f"segmentation-{n}.nii")
        assert volume.shape == mask.shape == (SMALL.matrix, SMALL.matrix, SMALL.lits_slices)
        assert np.allclose(volume.affine, mask.affine)
        assert np.allclose(np.abs(np.diag(volume.affine)[:3]), case["spacing_mm"])
        assert nib.aff2axcodes(volume.affine) == ("L", "P", "S")  # DICOM's LPS axes, in NIfTI's RAS+ world
        labels = np.asarray(mask.dataobj)
        assert set(np.unique(labels).tolist()) <= {0, 1, 2}
        assert (labels == 1).any()
        hu = np.asarray(volume.dataobj, dtype=float)
        assert hu.min() >= -1024 and hu[labels == 1].mean() > 30
        with_lesion += bool((labels == 2).any())
    assert 0 < with_lesion < len(manifest["lits"])


# ---------------------------------------------------------------- determinism and layout
def test_same_seed_same_bytes_different_seed_different_bytes(dataset, tmp_path):
    again = generate_dataset(tmp_path / "again", SMALL, workers=1)
    first, second = _files(dataset), _files(again)
    assert first.keys() == second.keys()
    assert [k for k in first if first[k] != second[k]] == []
    other = _files(generate_dataset(tmp_path / "other", PhantomConfig(**{**SMALL.__dict__, "seed": 4}),
                                    workers=1))
    dicoms = [k for k in first if k.endswith(".dcm")]
    assert all(first[k] != other[k] for k in dicoms if k in other)
    assert first["lits/volume-0.nii"] != other["lits/volume-0.nii"]


def test_layout(dataset):
    manifest = json.loads((dataset / "phantom.json").read_text())
    assert manifest["generator_version"] == GENERATOR_VERSION
    labelled = sorted(p.name for p in (dataset / "dicom").iterdir())
    corpus = sorted(p.name for p in (dataset / "corpus").iterdir())
    assert labelled == [f"PHANTOM-P{i:04d}" for i in range(SMALL.n_patients)]
    assert len(corpus) == SMALL.n_corpus_patients and not set(labelled) & set(corpus)
    for pid in labelled + corpus:
        root = dataset / ("dicom" if pid in labelled else "corpus") / pid
        assert sorted(p.name for p in root.iterdir()) == sorted(BODY_PART.values())
    assert manifest["counts"]["dicom_files"] == len(list((dataset / "dicom").rglob("*.dcm")))
    assert not list(dataset.parent.glob("*.tmp-*"))


def test_regenerating_replaces_the_dataset(tmp_path):
    config = PhantomConfig(n_patients=1, n_corpus_patients=0, matrix=32, slices_per_series=1,
                           n_lits_volumes=0)
    out = tmp_path / "ds"
    (out / "dicom" / "stale").mkdir(parents=True)
    generate_dataset(out, config, workers=1)
    assert not (out / "dicom" / "stale").exists() and (out / "phantom.json").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ds"]


def test_dataset_key_tracks_config():
    assert len(dataset_key(SMALL)) == 64
    assert dataset_key(SMALL) == dataset_key(PhantomConfig(**SMALL.__dict__))
    assert dataset_key(SMALL) != dataset_key(PhantomConfig(**{**SMALL.__dict__, "matrix": 65}))
