"""The value types of a stored result: finite numbers, metrics that may be null, fractions and counts.

Each check fails with the words the store's one-line problems use ("a number in (0, 1]"), so a
bad file is named for what it holds, not for pydantic's internal type names.
"""
from __future__ import annotations

import math
from typing import Annotated, Optional, Union

from pydantic import PlainValidator, StrictStr
from pydantic_core import PydanticCustomError

MAX_INT = 2**63  # counts and seeds must fit numpy's int64, which the aggregate tables use


def _number(value):
    """A finite int or float (not a bool); an int too big for a float is not a number here."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise PydanticCustomError("ctbench", "a number")
    try:
        finite = math.isfinite(float(value))
    except OverflowError:
        finite = False
    if not finite:
        raise PydanticCustomError("ctbench", "a number")
    return value


def _metric(value):
    try:
        return None if value is None else _number(value)
    except PydanticCustomError:
        raise PydanticCustomError("ctbench", "a number or null") from None


def _fraction(value):
    try:
        if 0 < _number(value) <= 1:
            return value
    except PydanticCustomError:
        pass
    raise PydanticCustomError("ctbench", "a number in (0, 1]")


def _count(value):
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < MAX_INT:
        return value
    raise PydanticCustomError("ctbench", "an integer from 0 to 2**63 - 1")


Number = Annotated[Union[int, float], PlainValidator(_number)]
Metric = Annotated[Optional[Union[int, float]], PlainValidator(_metric)]  # null: undefined (one class in the test set)
Fraction = Annotated[Union[int, float], PlainValidator(_fraction)]
Count = Annotated[int, PlainValidator(_count)]
Metrics = dict[StrictStr, Metric]
