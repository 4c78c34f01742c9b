"""Contact sheet for eyeballing the phantom: one row per region, a few slices each.

Not used by the benchmark; Pillow is imported only here, on demand.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from benchmark.synthetic.phantom.config import REGIONS, PhantomConfig
from benchmark.synthetic.phantom.patient import make_patient
from benchmark.synthetic.phantom.render import render


def contact_sheet(path: Path, config: PhantomConfig = PhantomConfig(), patient: int = 0,  # noqa: B008 (frozen, immutable config)
                  slices: tuple[int, ...] = (0, 2, 5), window: tuple[float, float] = (40, 400)) -> Path:
    from PIL import Image

    centre, width = window
    p = make_patient(config, "labelled", patient)
    rows = []
    for region in REGIONS:
        series = p.series[region]
        tiles = [render(p, series, min(k, series.n_slices - 1), config.matrix).hu for k in slices]
        rows.append(np.concatenate(tiles, axis=1))
    sheet = (np.clip((np.concatenate(rows).astype(float) - centre + width / 2) / width, 0, 1) * 255)
    Image.fromarray(sheet.astype(np.uint8)).save(path)
    return Path(path)
