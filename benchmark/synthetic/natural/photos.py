"""Photographs that installed wheels carry, found on disk at run time (never downloaded).

Only files inside the packages' own data folders are used: scikit-image fetches some
of its images with pooch on first use, and those are exactly the ones we must not touch.
"""
from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from benchmark.core.hashing import file_sha256

# (name, package, path inside the package, used as a task class)
SOURCES = (
    ("astronaut", "skimage", "data/astronaut.png", True),
    ("cat", "skimage", "data/chelsea.png", True),
    ("coffee", "skimage", "data/coffee.png", True),
    ("rocket", "skimage", "data/rocket.jpg", True),
    ("motorcycle", "skimage", "data/motorcycle_left.png", True),
    ("cameraman", "skimage", "data/camera.png", True),
    ("brick", "skimage", "data/brick.png", True),
    ("grass", "skimage", "data/grass.png", True),
    ("gravel", "skimage", "data/gravel.png", True),
    ("china", "sklearn", "datasets/images/china.jpg", True),
    ("flower", "sklearn", "datasets/images/flower.jpg", True),
    ("grace_hopper", "matplotlib", "mpl-data/sample_data/grace_hopper.jpg", True),
    ("hubble", "skimage", "data/hubble_deep_field.jpg", False),
    ("moon", "skimage", "data/moon.png", False),
    ("coins", "skimage", "data/coins.png", False),
)
TASK_CLASSES = tuple(name for name, _, _, is_class in SOURCES if is_class)


@dataclass(frozen=True)
class Photo:
    name: str
    path: Path
    sha256: str


def _package_dir(package: str) -> Optional[Path]:
    """The package's folder, found without importing it (importing scikit-image costs seconds)."""
    spec = importlib.util.find_spec(package)
    return Path(spec.origin).parent if spec is not None and spec.origin else None


def find_photos() -> dict[str, Photo]:
    """Every source photo present in this environment, by name."""
    found = {}
    for name, package, relative, _ in SOURCES:
        base = _package_dir(package)
        if base is not None and (base / relative).is_file():
            found[name] = Photo(name, base / relative, file_sha256(base / relative))
    return found
