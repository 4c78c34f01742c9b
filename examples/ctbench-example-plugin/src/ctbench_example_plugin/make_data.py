"""``python -m ctbench_example_plugin.make_data OUT``: a small DICOM folder to try the task on.

It borrows ctbench's phantom generator (12 patients, head to thighs); the plugin's task
reads the chest and abdomen slices of ``OUT/dicom``.
"""
from __future__ import annotations

import sys
from pathlib import Path

from benchmark.synthetic.phantom import PhantomConfig, generate_dataset


def main() -> int:
    if len(sys.argv) != 2:
        print("usage: python -m ctbench_example_plugin.make_data OUT", file=sys.stderr)
        return 2
    out = Path(sys.argv[1])
    generate_dataset(out, PhantomConfig(seed=5, n_patients=12, n_corpus_patients=1, matrix=64,
                                        slices_per_series=3, n_lits_volumes=1, lits_slices=4))
    print(out / "dicom")
    return 0


if __name__ == "__main__":
    sys.exit(main())
