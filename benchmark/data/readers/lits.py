"""The LiTS 2017 layout: ``volume-N.nii[.gz]`` beside ``segmentation-N.nii[.gz]``,
labels 0 background, 1 liver, 2 tumour. The phantom writes the same layout, so the
embedded liver tasks and the real dataset share this reader.
"""
from __future__ import annotations

import re
from pathlib import Path

from benchmark.core.errors import DataError

LITS_LABELS = {0, 1, 2}
_VOLUME = re.compile(r"^volume-(\d+)\.nii(\.gz)?$")


def lits_volumes(root: Path) -> list[Path]:
    """The ``volume-N.nii[.gz]`` files below ``root``, sorted by case number (``._*`` forks skipped)."""
    volumes = sorted((int(m.group(1)), path) for path in root.rglob("volume-*.nii*")
                     if not path.name.startswith("._") and (m := _VOLUME.match(path.name)))
    if not volumes:
        raise DataError("holds no LiTS volume-N.nii files", root)
    return [path for _, path in volumes]


def mask_of(volume: Path) -> Path:
    match = _VOLUME.match(volume.name)
    mask = volume.with_name(f"segmentation-{match.group(1)}.nii{match.group(2) or ''}")
    if not mask.is_file():
        raise DataError(f"has no matching {mask.name}", volume)
    return mask

