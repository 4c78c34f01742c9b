"""One module per CLI command group; each ``cmd_*`` takes parsed args and returns an exit code."""
from __future__ import annotations

import sys
from typing import Sequence


def info(message: str) -> None:
    """Progress and warnings go to stderr, so stdout stays machine-readable (paths, CSV, JSON)."""
    print(message, file=sys.stderr, flush=True)


def print_table(header: Sequence[str], rows: list[Sequence[str]]) -> None:
    widths = [max(len(str(x)) for x in column) for column in zip(header, *rows)]
    for row in (header, *rows):
        print("  ".join(str(x).ljust(w) for x, w in zip(row, widths)).rstrip())
