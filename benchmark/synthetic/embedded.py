"""The embedded default datasets, generated once per generator version and parameters.

Every embedded task reads one of these folders through a real-data reader; the folder
name carries the generator's cache key, so a changed generator never reuses old files.
"""
from __future__ import annotations

from pathlib import Path

from benchmark.core.locks import exclusive
from benchmark.synthetic.natural import NaturalConfig, find_photos, generate_natural, natural_key
from benchmark.synthetic.phantom import PhantomConfig, dataset_key, generate_dataset

# 80 patients leave a 64-patient pool, so the 10 % budget (7 patients) differs from the 1 % one;
# 40 LiTS-style volumes give the liver tasks a patient-grouped test set of 8 volumes.
PHANTOM = PhantomConfig(seed=0, n_patients=80, slices_per_series=4, n_lits_volumes=40)
NATURAL = NaturalConfig(seed=0)


def phantom_dataset(data_dir: Path) -> Path:
    out = data_dir / f"phantom-{dataset_key(PHANTOM)[:16]}"
    with exclusive(out, "writing the CT phantom"):
        if not (out / "phantom.json").is_file():
            generate_dataset(out, PHANTOM)
    return out


def natural_dataset(data_dir: Path) -> Path:
    out = data_dir / f"natural-{natural_key(NATURAL, find_photos())[:16]}"
    with exclusive(out, "writing the natural-image corpus"):
        if not (out / "natural.json").is_file():
            generate_natural(out, NATURAL)
    return out
