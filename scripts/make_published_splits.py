"""Regenerate ``benchmark/data/published/*.json.gz``: the split sets ctbench ships.

Only datasets whose patient ids are fixed by their public release and known without the data:
LiTS 2017's 131 training volumes (and MSD Task03, which re-publishes them as liver_0..130), KiTS19's
210 labelled cases, BraTS 2020's 369 training subjects, and MedMNIST's official splits by index
(sizes from ``medmnist.INFO``). Not shipped: the other MSD tasks (their case numbers have gaps this
code cannot know), KiTS21 (its task also reads KiTS23, a superset), and the CSV-defined datasets
(ChestX-ray14, DeepLesion, RSNA ICH, LUNA16), which a lab exports with ``ctbench splits export``.

The draw is ``make_split``/``make_budget`` on one row per patient with no labels, so the pool is one
stratum and every budget an unstratified draw. Run from the repository root:
``python scripts/make_published_splits.py`` (deterministic: the same bytes every time).
"""
from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmark.catalog.registries import task_registry  # noqa: E402
from benchmark.core.specs import DEFAULT_SEEDS  # noqa: E402
from benchmark.data.published import SHIPPED_DIR, Source, publishable_set, shipped_path, write_published  # noqa: E402
from benchmark.data.splits import make_budget, make_split  # noqa: E402

SCALES = (1.0, 0.1, 0.01)
LITS = [f"volume-{i}" for i in range(131)]
MEDMNIST = {"organamnist": (34581, 6491, 17778), "organcmnist": (13000, 2392, 8268),
            "organsmnist": (13940, 2452, 8829)}  # train, val, test: medmnist.INFO[flag]["n_samples"]
RELEASES = {
    "lits-liver-segmentation": (LITS, "LiTS 2017 training volumes volume-0..130"),
    "lits-tumour-present": (LITS, "LiTS 2017 training volumes volume-0..130"),
    "lits-liver-segmentation-all-slices": (LITS, "LiTS 2017 training volumes volume-0..130"),
    "msd-liver": ([f"liver_{i}" for i in range(131)], "MSD Task03_Liver training cases liver_0..130"),
    "kits19-segmentation": ([f"case_{i:05d}" for i in range(210)], "KiTS19 labelled cases case_00000..00209"),
    "brats2020-segmentation": ([f"BraTS20_Training_{i:03d}" for i in range(1, 370)],
                               "BraTS 2020 training subjects BraTS20_Training_001..369"),
}


def medmnist_ids(flag: str) -> tuple[list[str], np.ndarray]:
    """MedMNIST's patient ids are ``<split>-<index>`` (tasks/medmnist.py), with the official split per id."""
    ids, official = [], []
    for split, n in zip(("train", "val", "test"), MEDMNIST[flag]):
        ids += [f"{split}-{i:06d}" for i in range(n)]
        official += [split] * n
    return ids, np.asarray(official)


def make_set(name: str, patients: list[str], official: np.ndarray | None, origin: str, work: Path) -> dict:
    task = task_registry().get(name)
    ids = np.asarray(patients)
    folder = work / name
    split = make_split(name, task.spec.version, "published", ids, np.zeros(len(ids), dtype=np.int64),
                       folder / "split.json", official)
    budgets = [make_budget(split, seed, scale, ids, folder / f"seed{seed}" / f"scale-{scale:g}-{holdout}.json",
                           holdout=holdout)
               for seed in DEFAULT_SEEDS for scale in sorted({*SCALES, *task.spec.default_scales}, reverse=True)
               for holdout in (True, False)]
    return publishable_set(split, budgets, Source(kind="shipped", origin=origin))


def main() -> None:
    SHIPPED_DIR.mkdir(exist_ok=True)
    sets = {name: (ids, None, origin) for name, (ids, origin) in RELEASES.items()}
    sets.update({flag: (*medmnist_ids(flag), f"MedMNIST v2 {flag} official train/val/test split, by index")
                 for flag in MEDMNIST})
    with tempfile.TemporaryDirectory() as work:
        for name, (ids, official, origin) in sets.items():
            payload = make_set(name, ids, official, origin, Path(work))
            path = shipped_path(name, payload["task_version"])
            write_published(path, payload)
            print(f"{path}: {len(payload['split']['test_patients'])} test, {len(payload['budgets'])} budgets, "
                  f"split membership {payload['split_membership'][:16]}")


if __name__ == "__main__":
    main()
