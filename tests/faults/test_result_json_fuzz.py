"""Fuzzing the result JSON reader (``benchmark.results.store.read_result``): valid results round-trip
unchanged, and mutated ones (dropped keys, wrong types, random JSON values, NaN/inf and huge numbers,
random unicode, truncated or damaged bytes) either come back as a result the leaderboard can
aggregate or raise ``ResultError``, ctbench's one-line bad-input error naming the file. Never
anything else: a traceback from deep inside the statistics is the bug this guards against.
"""
from __future__ import annotations

import json
import math
import tempfile
from pathlib import Path

from hypothesis import event, given, settings
from hypothesis import strategies as st

from benchmark.core.atomic import canonical_json, write_json
from benchmark.core.errors import EXIT_BAD_INPUT
from benchmark.results.job import Job
from benchmark.results.schema import Result
from benchmark.results.store import ResultError, ResultStore, read_result
from leaderboard import stats
from leaderboard.aggregate import tidy
from leaderboard.site import _budget_labels, build_site

TEXT = st.text(min_size=1, max_size=12)  # any unicode: RTL, emoji, combining marks, controls
NUMBER = st.floats(allow_nan=False, allow_infinity=False) | st.integers(-10**6, 10**6)
WILD_NUMBER = (st.floats() | st.integers() | st.integers(min_value=10**300, max_value=10**400)
               | st.sampled_from([float("nan"), float("inf"), -float("inf"), 1e308, -0.0, 2**63, -1]))
JSON_VALUE = st.recursive(st.none() | st.booleans() | WILD_NUMBER | st.text(max_size=8),
                          lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner,
                                                                                      max_size=3),
                          max_leaves=6)
ODD_TEXT = st.text(st.characters(categories=["Cs", "Co", "Mn", "So", "Cf"]), max_size=6)  # surrogates, RTL marks


@st.composite
def results(draw) -> dict:
    """A result as ``ResultStore.write`` stores it, with the optional sections sometimes present."""
    checkpoint, task = draw(TEXT), draw(TEXT)
    job = Job(checkpoint, draw(st.text("0123456789abcdef", min_size=64, max_size=64)), task, draw(TEXT),
              draw(TEXT), "1", draw(st.floats(min_value=1e-4, max_value=1.0)), draw(st.integers(0, 2**31)),
              draw(st.sampled_from(["demo", "paper"])))
    metrics = draw(st.dictionaries(TEXT, st.none() | NUMBER, min_size=1, max_size=3))
    domain = draw(st.sampled_from(["ct", "natural", "none"]))
    payload = {"schema_version": 1, "job": job.as_dict(), "metrics": metrics,
               "checkpoint": {"name": checkpoint, "pretraining_domain": domain, "method": draw(TEXT)},
               "task": {"name": task, "domain": draw(st.sampled_from(["ct", "mri", "xray", "natural"]) | TEXT)}}
    if draw(st.booleans()):
        payload["main_metric"] = {"name": draw(st.sampled_from(sorted(metrics))),
                                  "higher_is_better": draw(st.booleans()), "value": draw(st.none() | NUMBER)}
    if draw(st.booleans()):
        payload["counts"] = {"train_cases": draw(st.integers(0, 10**6)), "val_cases": draw(st.integers(0, 10**6))}
    if draw(st.booleans()):
        payload["provenance"] = {"device": draw(TEXT), "packages": {draw(TEXT): draw(TEXT)}}
    return payload


def locations(value, prefix: tuple = ()) -> list[tuple]:
    """The path of every value nested in ``value`` (dict keys and list indices)."""
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else []
    found = []
    for key, inner in items:
        found += [prefix + (key,), *locations(inner, prefix + (key,))]
    return found


def container(payload, path: tuple):
    for key in path[:-1]:
        payload = payload[key]
    return payload


def write(folder: Path, content: bytes) -> Path:
    path = folder / "result.json"
    path.write_bytes(content)
    return path


def serialized(payload, ascii_only: bool) -> bytes:
    """As a careless writer would: NaN and Infinity literals allowed, surrogates passed through."""
    return json.dumps(payload, ensure_ascii=ascii_only, allow_nan=True).encode("utf-8", "surrogatepass")


def outcome(content: bytes):
    """The reader's verdict on these bytes: the result, or the ResultError. Anything else propagates."""
    with tempfile.TemporaryDirectory() as folder:
        path = write(Path(folder), content)
        try:
            return read_result(path)
        except ResultError as exc:
            message = str(exc)
            assert message.startswith(f"{path}: ") and "\n" not in message, message
            assert exc.exit_code == EXIT_BAD_INPUT and exc.problem and str(path) not in exc.problem
            return exc


def assert_usable(result: Result, other: dict) -> None:
    """The per-result reads every leaderboard table starts from must work on an accepted result
    (the full statistics and pages run in the site test below, on fewer examples: they are slower)."""
    canonical_json(result.payload()).encode("utf-8")  # ctbench could write it back: no NaN, no lone surrogate
    loaded = [result, Result.from_stored(other)]
    frame = tidy(loaded)
    assert all(math.isfinite(v) for v in frame["value"].dropna().astype(float))
    stats.checkpoint_entries(loaded)
    stats.main_metrics(loaded)
    _budget_labels(loaded)


def check(content: bytes, other: dict) -> None:
    verdict = outcome(content)
    event("accepted" if isinstance(verdict, Result) else "refused")  # --hypothesis-show-statistics
    if isinstance(verdict, Result):
        assert_usable(verdict, other)


def mutate(result: dict, data) -> dict:
    """Drop one nested key or replace its value with random JSON (wrong types, NaN/inf, huge
    numbers, nested junk, unicode including surrogates and private-use characters)."""
    path = data.draw(st.sampled_from(locations(result)))
    if data.draw(st.booleans()):
        del container(result, path)[path[-1]]
    else:
        container(result, path)[path[-1]] = data.draw(JSON_VALUE | ODD_TEXT)
    return result


@settings(max_examples=60)
@given(results())
def test_a_valid_result_round_trips_unchanged(result):
    assert outcome(canonical_json(result).encode("utf-8")).payload() == result


@given(results(), results(), st.data())
def test_a_dropped_or_replaced_value_is_either_harmless_or_a_named_error(result, other, data):
    check(serialized(mutate(result, data), data.draw(st.booleans())), other)


@settings(max_examples=60)
@given(results(), results(), st.data())
def test_damaged_bytes_are_either_harmless_or_a_named_error(result, other, data):
    """Truncation (a crash mid-write on a filesystem without atomic rename), a flipped byte, a stray
    NaN literal, a lone surrogate escape, or a top-level value that is not an object."""
    content = canonical_json(result).encode("utf-8")
    damage = data.draw(st.sampled_from(["truncate", "flip", "nan", "surrogate", "top-level"]))
    if damage == "truncate":
        content = content[:data.draw(st.integers(0, len(content) - 1))]
    elif damage == "flip":
        at = data.draw(st.integers(0, len(content) - 1))
        content = content[:at] + bytes([data.draw(st.integers(0, 255))]) + content[at + 1:]
    elif damage == "nan":
        content = content.replace(b": 1,", b": NaN,", 1).replace(b'"demo"', b"Infinity")
    elif damage == "surrogate":
        content = content.replace(b'"checkpoint": "', b'"checkpoint": "\\udc80', 1)
    else:
        content = serialized(data.draw(JSON_VALUE.filter(lambda v: not isinstance(v, dict))), True)
    check(content, other)


@settings(max_examples=20)
@given(result=results(), other=results(), data=st.data())
def test_the_site_builds_from_whatever_the_reader_accepts(result, other, data, tmp_path_factory):
    """The strictest consumer: statistics, every page, the plots and the downloads, from an accepted mutant."""
    root = tmp_path_factory.mktemp("fuzz-site")
    (root / "results").mkdir()
    write(root / "results", serialized(mutate(result, data), True))
    write_json(root / "results" / "other.json", other)
    _, warnings = build_site(ResultStore(root / "results"), root / "site")
    assert len(warnings) <= 1 and (root / "site" / "index.html").is_file()
