from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def tiny_phantom(tmp_path_factory) -> Path:
    """A small phantom dataset on disk; its DICOM folder is what real-data runs point at."""
    from benchmark.synthetic.phantom import PhantomConfig, generate_dataset

    out = tmp_path_factory.mktemp("phantom") / "data"
    generate_dataset(out, PhantomConfig(seed=3, n_patients=12, n_corpus_patients=1, matrix=64, slices_per_series=3,
                                        n_lits_volumes=1, lits_slices=4))
    return out
