"""Write the natural-image data as PNG files in torchvision's ImageFolder layout.

``images/<class>/<class>-bNN__K.png`` holds crops of one spatial block NN of one
photograph; the block is the grouping unit (the "patient"), so train and test crops
never come from the same part of a photo. ``corpus/`` holds unlabeled random crops of
every photo found, for natural-domain pretraining.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from benchmark.core.atomic import publish_folder, temp_folder
from benchmark.core.errors import DataError
from benchmark.core.hashing import canonical_hash
from benchmark.synthetic.natural.photos import TASK_CLASSES, Photo, find_photos

NATURAL_VERSION = "1"


@dataclass(frozen=True)
class NaturalConfig:
    seed: int = 0
    grid: int = 4  # blocks per side of each photo: grid**2 groups per class
    crops_per_block: int = 3
    crop_px: int = 96
    n_corpus: int = 600


def natural_key(config: NaturalConfig, photos: dict[str, Photo]) -> str:
    """Depends on the source bytes too: a package upgrade that changes a photo changes the data."""
    return canonical_hash([NATURAL_VERSION, asdict(config), sorted((p.name, p.sha256) for p in photos.values())])


def generate_natural(out: Path, config: NaturalConfig = NaturalConfig()) -> Path:
    photos = find_photos()
    missing = [name for name in TASK_CLASSES if name not in photos]
    if missing:
        raise DataError(f"the natural-image task needs photos {missing}, which the installed scikit-image, "
                        "scikit-learn or matplotlib do not ship; reinstall them")
    with temp_folder(out) as tmp:  # a killed run's is swept; a finished one is renamed into place whole
        counts = _write_task_images(tmp / "images", photos, config)
        counts["corpus"] = _write_corpus(tmp / "corpus", photos, config)
        manifest = {"version": NATURAL_VERSION, "config": asdict(config), "counts": counts,
                    "sources": {p.name: {"path": p.path.name, "sha256": p.sha256} for p in photos.values()}}
        (tmp / "natural.json").write_text(json.dumps(manifest, sort_keys=True, indent=1) + "\n")
        publish_folder(tmp, out)
    return out


def _load_rgb(photo: Photo):
    from PIL import Image

    with Image.open(photo.path) as image:
        return image.convert("RGB")


def _crop(image, box: tuple[int, int, int, int], rng: np.random.Generator, size: int):
    """A random square inside ``box`` (60-100 % of its short side), maybe mirrored."""
    from PIL import Image

    left, top, right, bottom = box
    side = int(min(right - left, bottom - top) * rng.uniform(0.6, 1.0))
    x = left + int(rng.integers(0, right - left - side + 1))
    y = top + int(rng.integers(0, bottom - top - side + 1))
    crop = image.crop((x, y, x + side, y + side)).resize((size, size), Image.Resampling.BILINEAR)
    return crop.transpose(Image.Transpose.FLIP_LEFT_RIGHT) if rng.random() < 0.5 else crop


def _write_task_images(root: Path, photos: dict[str, Photo], config: NaturalConfig) -> dict:
    n = 0
    for class_index, name in enumerate(TASK_CLASSES):
        image = _load_rgb(photos[name])
        rng = np.random.default_rng([config.seed, class_index])
        (root / name).mkdir(parents=True)
        width, height = image.size
        for block in range(config.grid ** 2):
            row, col = divmod(block, config.grid)
            box = (col * width // config.grid, row * height // config.grid,
                   (col + 1) * width // config.grid, (row + 1) * height // config.grid)
            for k in range(config.crops_per_block):
                _crop(image, box, rng, config.crop_px).save(root / name / f"{name}-b{block:02d}__{k}.png")
                n += 1
    return {"classes": len(TASK_CLASSES), "groups": len(TASK_CLASSES) * config.grid ** 2, "images": n}


def _write_corpus(root: Path, photos: dict[str, Photo], config: NaturalConfig) -> int:
    root.mkdir(parents=True)
    images = {name: _load_rgb(photo) for name, photo in sorted(photos.items())}
    rng = np.random.default_rng([config.seed, 10_000])
    names = sorted(images)
    for i in range(config.n_corpus):
        name = names[i % len(names)]
        width, height = images[name].size
        _crop(images[name], (0, 0, width, height), rng, config.crop_px).save(root / f"{name}-{i:04d}.png")
    return config.n_corpus
