"""Spreadsheet-formula neutralisation for every CSV ctbench publishes.

A CSV cell starting with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return is run as a
formula by Excel and LibreOffice (CSV injection); a checkpoint name, a metric or an imported
source is user text, so a downloaded leaderboard could otherwise execute it. As OWASP
recommends, such a *text* cell is prefixed with a single quote. Numbers are never touched:
the writers pass only their text columns here, so a negative delta stays a number.
``restore`` undoes the prefix, so ``results export`` still round-trips through ``results import``.
"""
from __future__ import annotations

import pandas as pd

TRIGGERS = ("=", "+", "-", "@", "\t", "\r")


def neutralise(text: str) -> str:
    """``text`` as a spreadsheet shows it, never run as a formula."""
    return "'" + text if isinstance(text, str) and text.startswith(TRIGGERS) else text


def restore(text: str) -> str:
    """The cell ``neutralise`` was given: a quote is dropped only where it guards a trigger."""
    return text[1:] if text.startswith("'") and text[1:].startswith(TRIGGERS) else text


def neutralise_columns(frame: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    """A copy whose ``columns`` (the text ones) are neutralised cell by cell."""
    safe = frame.copy()
    for column in columns:
        safe[column] = [neutralise(v) for v in safe[column]]
    return safe
