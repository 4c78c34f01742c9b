"""Submission bundles: one zip file holding a checkpoint's results, their saved test predictions and
what they were measured on, so a maintainer who holds the data can recompute every number.

Layout (``bundle.json`` first, then the rest sorted; fixed timestamps and modes, so the same results
always give the same bytes and the same bundle sha256)::

    bundle.json                              format, checkpoint (name, sha256, spec), submitter, task
                                             versions, per-result membership hashes, every member's sha256
    results/<task>/<job_id>.json             the stored result, as ``ResultStore`` wrote it
    results/<task>/<job_id>.predictions.npz  its saved test predictions (case ids, patient ids, outputs)

Reading (``read_bundle``) treats the file as hostile (``benchmark.results.untrusted_zip``): members are
read into memory, never extracted; only regular files with names of that layout pass (no absolute
paths, ``..``, backslashes, symlinks or duplicates); sizes and compression ratios are capped before
anything is decompressed, including the arrays inside each npz, whose headers are checked before
numpy allocates them. Then every member's sha256 must be the one ``bundle.json`` lists, results parse
strictly (``Result.from_stored``) and agree with their names, job ids and ``bundle.json``. Every
problem is collected and reported as ``<member>: <problem>``.
"""
from __future__ import annotations

import hashlib
import platform
import re
import stat
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, StrictStr, ValidationError

from benchmark import __version__
from benchmark.core.atomic import atomic_open, canonical_json
from benchmark.core.errors import ConfigError, DataError
from benchmark.core.hashing import file_sha256
from benchmark.core.specs import NAME_PATTERN, VERSION_PATTERN
from benchmark.results.job import Job
from benchmark.results.schema import Result, shown
from benchmark.results.store import LoadProblem, ResultStore
from benchmark.results.untrusted_zip import load_npz_bytes, npz_problems, read_members, strict_json

BUNDLE_FORMAT = "ctbench-bundle"
BUNDLE_VERSION = 1
MANIFEST = "bundle.json"
FIXED_TIME = (1980, 1, 1, 0, 0, 0)  # the earliest a zip can say: no clock in the bytes
FILE_MODE = (stat.S_IFREG | 0o644) << 16
_PART = r"[A-Za-z0-9][A-Za-z0-9._+-]{0,199}"
MEMBER_PATTERN = re.compile(rf"^results/(?P<task>{_PART})/(?P<job>{_PART}?)\.(?P<kind>json|predictions\.npz)$")
NAME_RULE = "only bundle.json and results/<task>/<job_id>.json|.predictions.npz; no '..', '/' or '\\' paths"
REQUIRED_ARRAYS = ("case_ids", "patient_ids", "y_true")
PREDICTION_ARRAYS = ("probabilities", "masks")
CONTROL = re.compile(r"[\x00-\x1f\x7f\u2028\u2029]")


class BundleRefused(DataError):
    """A bundle with problems; ``problems`` holds one line each, the message only their count."""

    def __init__(self, path: Path, problems: list[str]):
        # names from bundle.json reach these lines unchecked: one line each, whatever they hold
        self.problems = [CONTROL.sub(lambda m: repr(m.group())[1:-1], p) for p in problems]
        super().__init__(f"refused: {len(problems)} problem(s), each listed above", path)


# ---------------------------------------------------------------- bundle.json


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class CheckpointEntry(_Strict):
    name: str = Field(pattern=NAME_PATTERN)
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    spec: dict


class ResultEntry(_Strict):
    """What the maintainer's split and budget must reproduce, listed beside each result."""

    task: str = Field(pattern=NAME_PATTERN)
    task_version: str = Field(pattern=VERSION_PATTERN)
    job_id: StrictStr
    predictions: StrictStr
    split_membership: StrictStr
    budget_membership: StrictStr


class BundleManifest(_Strict):
    format: str = Field(pattern=f"^{BUNDLE_FORMAT}$")
    format_version: int = Field(ge=BUNDLE_VERSION, le=BUNDLE_VERSION)
    ctbench_version: StrictStr
    submitter: StrictStr
    checkpoint: CheckpointEntry
    tasks: dict[StrictStr, StrictStr]
    results: dict[StrictStr, ResultEntry]
    members: dict[StrictStr, StrictStr]
    provenance: dict


# ---------------------------------------------------------------- the bundle as read


@dataclass(frozen=True)
class BundleResult:
    member: str
    result: Result
    predictions_member: str
    predictions_bytes: bytes

    def predictions(self) -> dict[str, np.ndarray]:
        """The arrays, decoded only now (a segmentation bundle's masks are large); ValueError if unsafe."""
        return load_npz_bytes(self.predictions_bytes, REQUIRED_ARRAYS, PREDICTION_ARRAYS)


@dataclass(frozen=True)
class Bundle:
    path: Path
    sha256: str
    manifest: BundleManifest
    manifest_bytes: bytes
    results: list[BundleResult]

    @property
    def checkpoint(self) -> str:
        return self.manifest.checkpoint.name


# ---------------------------------------------------------------- writing


@dataclass(frozen=True)
class BundleSummary:
    path: Path
    sha256: str
    tasks: dict[str, str]
    n_results: int


def write_bundle(store: ResultStore, checkpoint: str, out: Path, submitter: str = "") -> BundleSummary:
    """Bundle every stored result of ``checkpoint``; refuses (ConfigError) results a maintainer could not check."""
    found = _checkpoint_results(store, checkpoint)
    members: dict[str, bytes] = {}
    entries: dict[str, dict] = {}
    for path, result in found:
        json_name, npz_name = member_names(result)
        members[json_name] = path.read_bytes()
        members[npz_name] = (path.parent / result.predictions_file).read_bytes()
        entries[json_name] = _result_entry(result, npz_name)
    manifest = _manifest(found, entries, members, submitter)
    write_zip(out, {MANIFEST: canonical_json(manifest).encode(), **members})
    return BundleSummary(Path(out), file_sha256(out), manifest["tasks"], len(found))


def member_names(result: Result) -> tuple[str, str]:
    base = f"results/{result.job.task}/{result.job.job_id}"
    return f"{base}.json", f"{base}.predictions.npz"


def _checkpoint_results(store: ResultStore, checkpoint: str) -> list[tuple[Path, Result]]:
    """The checkpoint's results, each checked to carry what verification needs."""
    found, problems = [], []
    for path, item in store.iter_files():
        if isinstance(item, LoadProblem):
            if path.is_relative_to(store.root / checkpoint):
                problems.append(f"{path}: {item.problem}")
        elif item.job.checkpoint == checkpoint:
            problems += [f"{path}: {p}" for p in _bundleable(path, item)]
            found.append((path, item))
    if not found and not problems:
        raise ConfigError(f"holds no results of checkpoint {checkpoint!r} (run `ctbench run` first)", store.root)
    problems += _one_checkpoint_file(found)
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise ConfigError(f"cannot bundle {checkpoint!r}: {problems[0]}{more}")
    return found


def _bundleable(path: Path, result: Result) -> list[str]:
    problems = []
    splits = result.splits
    if splits is None or not splits.split_membership or not splits.budget_membership:
        problems.append("records no split membership (written by an older ctbench); run the job again")
    expected = f"{result.job.job_id}.predictions.npz"
    if result.predictions_file != expected or not (path.parent / expected).is_file():
        problems.append(f"its predictions file {expected} is missing; run the job again")
    elif not _holds_arrays(path.parent / expected, REQUIRED_ARRAYS):
        problems.append("its predictions hold no case ids (written by an older ctbench); run the job again")
    return problems


def _holds_arrays(path: Path, names: tuple[str, ...]) -> bool:
    try:
        with zipfile.ZipFile(path) as archive:
            return {f"{n}.npy" for n in names} <= set(archive.namelist())
    except (OSError, zipfile.BadZipFile):
        return False


def _one_checkpoint_file(found: list[tuple[Path, Result]]) -> list[str]:
    """A bundle names one checkpoint file: results of an earlier file under the same name are not its."""
    shas = sorted({result.job.checkpoint_sha256 for _, result in found})
    if len(shas) <= 1:
        return []
    return [f"its results come from {len(shas)} different weight files ({', '.join(s[:12] for s in shas)}); "
            "remove the results of the files you are not submitting"]


def _result_entry(result: Result, npz_name: str) -> dict:
    return {"task": result.job.task, "task_version": result.job.task_version, "job_id": result.job.job_id,
            "predictions": npz_name, "split_membership": result.splits.split_membership,
            "budget_membership": result.splits.budget_membership}


def _manifest(found: list[tuple[Path, Result]], entries: dict, members: dict[str, bytes], submitter: str) -> dict:
    first = found[0][1]
    return {
        "format": BUNDLE_FORMAT, "format_version": BUNDLE_VERSION, "ctbench_version": __version__,
        "submitter": submitter,
        "checkpoint": {"name": first.job.checkpoint, "sha256": first.job.checkpoint_sha256,
                       "spec": first.checkpoint.as_dict()},
        "tasks": {r.job.task: r.job.task_version for _, r in found},
        "results": entries,
        "members": {name: hashlib.sha256(data).hexdigest() for name, data in sorted(members.items())},
        "provenance": {"ctbench_version": __version__, "python": platform.python_version()},
    }


def write_zip(out: Path, members: dict[str, bytes]) -> None:
    """Deterministic bytes: ``bundle.json`` first, then sorted names, fixed times and modes; atomic."""
    names = sorted(members, key=lambda name: (name != MANIFEST, name))
    with atomic_open(Path(out), "wb") as handle, zipfile.ZipFile(handle, "w") as archive:
        for name in names:
            info = zipfile.ZipInfo(name, date_time=FIXED_TIME)
            info.compress_type, info.external_attr, info.create_system = zipfile.ZIP_DEFLATED, FILE_MODE, 3
            archive.writestr(info, members[name], compresslevel=6)


# ---------------------------------------------------------------- reading


def read_bundle(path: Path) -> Bundle:
    """The bundle, every member checked; ``BundleRefused`` lists every problem found."""
    path = Path(path)
    members, problems = read_members(path, _valid_name, NAME_RULE)
    if MANIFEST not in members and not problems:
        problems = [f"{MANIFEST}: missing (not a ctbench bundle)"]
    if problems:
        raise BundleRefused(path, problems)
    manifest = _parse_manifest(path, members)
    results, problems = _results(manifest, members)
    problems += _member_hashes(manifest, members)
    if problems:
        raise BundleRefused(path, problems)
    return Bundle(path, file_sha256(path), manifest, members[MANIFEST], results)


def _valid_name(name: str) -> bool:
    return name == MANIFEST or MEMBER_PATTERN.match(name) is not None


def _parse_manifest(path: Path, members: dict[str, bytes]) -> BundleManifest:
    try:
        payload = strict_json(members[MANIFEST])
        return BundleManifest.model_validate(payload)
    except ValueError as exc:
        raise BundleRefused(path, [f"{MANIFEST}: {_first_problem(exc)}"]) from None


def _first_problem(exc: ValueError) -> str:
    if isinstance(exc, ValidationError):
        first = exc.errors(include_url=False)[0]
        where = ".".join(str(p) for p in first["loc"]) or "the file"
        return f"{where}: {first['msg']}"
    return str(exc)


def _member_hashes(manifest: BundleManifest, members: dict[str, bytes]) -> list[str]:
    """Every member but bundle.json is listed with its sha256, and nothing else is listed."""
    present = set(members) - {MANIFEST}
    problems = [f"{n}: not listed in bundle.json's members" for n in sorted(present - set(manifest.members))]
    problems += [f"{n}: listed in bundle.json but not in the bundle" for n in sorted(set(manifest.members) - present)]
    problems += [f"{n}: its sha256 is not the one bundle.json lists (edited after bundling)"
                 for n in sorted(present & set(manifest.members))
                 if hashlib.sha256(members[n]).hexdigest() != manifest.members[n]]
    return problems


def _results(manifest: BundleManifest, members: dict[str, bytes]) -> tuple[list[BundleResult], list[str]]:
    results, problems = [], []
    json_members = sorted(n for n in members if n.endswith(".json") and n != MANIFEST)
    problems += [f"{n}: not listed in bundle.json's results" for n in json_members if n not in manifest.results]
    problems += [f"{n}: listed in bundle.json's results but not in the bundle"
                 for n in sorted(manifest.results) if n not in members]
    used = {entry.predictions for entry in manifest.results.values()}
    problems += [f"{n}: predictions of no result" for n in sorted(members)
                 if n.endswith(".predictions.npz") and n not in used]
    for name in json_members:
        if name in manifest.results:
            entry, entry_problems = _result(name, manifest, members)
            problems += entry_problems
            results += [entry] if entry is not None else []
    listed = {entry.task for entry in manifest.results.values()}
    problems += [f"{MANIFEST}: tasks lists {shown(t)}, which no result ran" for t in sorted(set(manifest.tasks) - listed)]
    return results, problems


def _result(name: str, manifest: BundleManifest, members: dict[str, bytes]) -> tuple[BundleResult | None, list[str]]:
    try:
        payload = strict_json(members[name])
        if not isinstance(payload, dict):
            raise ValueError("not a ctbench result (not a JSON object)")
        result = Result.from_stored(payload)
    except ValueError as exc:
        return None, [f"{name}: {exc}"]
    entry = manifest.results[name]
    problems = [f"{name}: {p}" for p in _result_problems(name, result, entry, manifest)]
    if entry.predictions not in members:
        return None, problems + [f"{name}: its predictions {shown(entry.predictions)} are not in the bundle"]
    problems += [f"{entry.predictions}: {p}"
                 for p in npz_problems(members[entry.predictions], REQUIRED_ARRAYS, PREDICTION_ARRAYS)]
    return BundleResult(name, result, entry.predictions, members[entry.predictions]), problems


def _result_problems(name: str, result: Result, entry: ResultEntry, manifest: BundleManifest) -> list[str]:
    """The result agrees with its file name, its job id, bundle.json's listing and its checkpoint."""
    job, splits = result.job, result.splits
    json_name, npz_name = member_names(result)
    checks = [
        (name != json_name, f"is stored as {name}, not as its task and job id say ({json_name})"),
        (_job_id(result) != job.job_id, "its job id does not follow from its job fields (edited)"),
        (entry.predictions != npz_name or result.predictions_file != f"{job.job_id}.predictions.npz",
         f"its predictions must be {npz_name}"),
        ((job.task, job.task_version) != (entry.task, entry.task_version)
         or manifest.tasks.get(job.task) != job.task_version or result.task.version != job.task_version,
         "its task or task version differs from bundle.json's"),
        (splits is None or (splits.split_membership, splits.budget_membership)
         != (entry.split_membership, entry.budget_membership), "its split membership differs from bundle.json's"),
        ((job.checkpoint, job.checkpoint_sha256) != (manifest.checkpoint.name, manifest.checkpoint.sha256),
         f"its checkpoint {job.checkpoint} ({job.checkpoint_sha256[:12]}) is not the bundle's"),
        (result.submission is not None or result.imported is not None,
         "holds a submission or import section, which only the maintainer's ctbench writes"),
    ]
    return [problem for failed, problem in checks if failed]


def _job_id(result: Result) -> str | None:
    try:
        return Job.from_dict(result.job.as_dict()).job_id
    except (TypeError, ValueError):
        return None


