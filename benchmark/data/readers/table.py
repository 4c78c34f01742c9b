"""The CSV index files public datasets ship (DL_info.csv, candidates_V2.csv, ...), read as text.

Every value stays a string (``dtype=str``, no NA guessing): an adapter converts the columns
it uses and names the line that does not convert, instead of pandas silently making NaN.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import pandas as pd

from benchmark.core.errors import DataError


def read_index(path: Path, columns: Sequence[str]) -> pd.DataFrame:
    try:
        table = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (OSError, ValueError, UnicodeDecodeError, pd.errors.ParserError) as exc:
        raise DataError(f"not a readable CSV ({type(exc).__name__}: {exc})", path) from None
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise DataError(f"lacks column(s) {', '.join(missing)}", path)
    return table
