"""Readers for the real on-disk formats: DICOM (pydicom) and NIfTI (nibabel)."""
