"""Photographs (PNG, JPEG) as float32 (3, H, W) arrays in 0-255, with Pillow."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from benchmark.core.errors import DataError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")


def read_rgb(path: Path) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            rgb = np.asarray(image.convert("RGB"), dtype=np.float32)
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise DataError(f"not a readable image ({type(exc).__name__}: {exc})", path) from None
    return rgb.transpose(2, 0, 1)
