"""The knobs of the phantom and the names the rest of ctbench relies on."""
from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass

#: Bump whenever a change alters any written byte: it is part of the cache key.
GENERATOR_VERSION: str = "1.2.0"

REGIONS: tuple[str, ...] = ("head_neck", "thorax", "abdomen", "extremities", "hip_pelvis", "spine")

BODY_PART: dict[str, str] = {"head_neck": "HEADNECK", "thorax": "CHEST", "abdomen": "ABDOMEN",
                             "extremities": "EXTREMITY", "hip_pelvis": "PELVIS", "spine": "SPINE"}


@dataclass(frozen=True)
class PhantomConfig:
    seed: int = 0
    n_patients: int = 24            # labelled patients
    n_corpus_patients: int = 40     # unlabeled pretraining corpus patients (disjoint PatientIDs)
    matrix: int = 128               # pixels per side of each axial slice
    slices_per_series: int = 6
    n_lits_volumes: int = 12        # NIfTI liver volumes
    lits_slices: int = 16


def config_dict(config: PhantomConfig) -> dict:
    return asdict(config)


def dataset_key(config: PhantomConfig) -> str:
    """Cache directory name: changes whenever the config or the generator's output does."""
    payload = json.dumps({"generator_version": GENERATOR_VERSION, "config": config_dict(config)},
                         sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()
