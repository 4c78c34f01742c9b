"""``ctbench leaderboard ingest``: check a submission bundle against the maintainer's own data, then
store it as an ordinary result store under ``<workdir>/ingested/<checkpoint>--<sha256[:12]>/``.

A submitter's numbers are never taken on trust. For each task the maintainer holds data for (``--data
TASK=DIR``, or an embedded task, which any workdir can generate), every result must reproduce: the task
version is this ctbench's, the maintainer's split and label budget have the recorded membership hashes,
the prediction case ids are exactly the maintainer's test set, and every metric recomputed from the
bundle's predictions against the *maintainer's* labels (never the bundle's ``y_true``) equals the stored
one. Those results are stored as "verified". A task without data here can only be checked for
consistency (its metrics follow from its own predictions): "self-reported".

Any problem refuses the whole bundle, each problem one line, and nothing is written. Nothing in a
bundle is executed (its checkpoint is never loaded) and every path written is built from names the
reader validated, inside a temp folder that is renamed into place whole.
"""
from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from benchmark import __version__
from benchmark.catalog.registries import task_registry
from benchmark.core.atomic import atomic_open, canonical_json, publish_folder, temp_folder
from benchmark.core.errors import DataError, RegistryError
from benchmark.core.workdir import Workdir
from benchmark.results.bundle import PREDICTION_ARRAYS, Bundle, BundleRefused, BundleResult, read_bundle
from benchmark.results.rescore import differences, same_metric
from benchmark.results.schema import Result, builtin_baseline_role
from leaderboard.ingested import ingested_dir

METRIC_TOLERANCE = 1e-6  # the same predictions scored by another machine's scikit-learn


@dataclass
class TaskReport:
    task: str
    version: str
    status: str  # "verified" or "self-reported"
    n_results: int = 0
    test_cases: int | None = None  # the maintainer's test set, where verified
    metrics: set[str] = field(default_factory=set)


@dataclass
class IngestReport:
    bundle: Bundle
    folder: Path
    tasks: list[TaskReport]
    changed: bool  # False: the same bundle was ingested before with the same outcome
    unused_data: list[str]  # --data tasks the bundle does not hold


def ingest(path: Path, workdir: Workdir, data_roots: dict[str, Path]) -> IngestReport:
    """Check the bundle at ``path``; raises ``BundleRefused`` (every problem) before anything is written."""
    bundle = read_bundle(path)
    _check_data_roots(data_roots)
    problems = _role_problems(bundle)
    reports = []
    for (task, version), entries in sorted(_by_task(bundle).items()):
        report, found = _check_task(task, version, entries, workdir, data_roots)
        reports.append(report)
        problems += found
    if problems:
        raise BundleRefused(bundle.path, problems)
    statuses = {e.member: r.status for r in reports for e in bundle.results if e.result.job.task == r.task}
    folder, changed = store_bundle(bundle, statuses, workdir)
    unused = sorted(set(data_roots) - {r.task for r in reports})
    return IngestReport(bundle, folder, reports, changed, unused)


def data_available(spec, data_roots: dict[str, Path]) -> bool:
    """Whether the maintainer can verify a task: its data given, or generated (embedded tasks)."""
    return spec.name in data_roots or bool(spec.embedded)


def _check_data_roots(data_roots: dict[str, Path]) -> None:
    for name, root in data_roots.items():
        task_registry().get(name)
        if not Path(root).expanduser().is_dir():
            raise DataError(f"is not a directory (given with --data {name}=...)", root)


def _by_task(bundle: Bundle) -> dict[tuple[str, str], list[BundleResult]]:
    groups: dict[tuple[str, str], list[BundleResult]] = defaultdict(list)
    for entry in bundle.results:
        groups[(entry.result.job.task, entry.result.job.task_version)].append(entry)
    return groups


def _role_problems(bundle: Bundle) -> list[str]:
    """A baseline role moves every Δ on the site: only a built-in reference checkpoint may carry one."""
    problems = []
    for entry in bundle.results:
        checkpoint = entry.result.checkpoint
        role = checkpoint.baseline_role
        if role is not None and builtin_baseline_role(checkpoint.name) != role:
            problems.append(f"{entry.member}: its checkpoint claims the leaderboard role {role!r}, which only "
                            "the built-in reference checkpoints play")
    return problems


# ---------------------------------------------------------------- one task


def _check_task(name: str, version: str, entries: list[BundleResult], workdir: Workdir,
                data_roots: dict[str, Path]) -> tuple[TaskReport, list[str]]:
    try:
        task = task_registry().get(name)
    except RegistryError:
        return TaskReport(name, version, "refused"), [f"{e.member}: task {name} is not one this ctbench knows"
                                                      for e in entries]
    if task.spec.version != version:
        return TaskReport(name, version, "refused"), [
            f"{e.member}: task {name} version {version} is not this ctbench's ({task.spec.version})" for e in entries]
    problems = _published_problems(name, version, entries, workdir)
    if not data_available(task.spec, data_roots):
        report = TaskReport(name, version, "self-reported", len(entries))
        return report, problems + [p for e in entries for p in _self_consistent(e, task, report)]
    report = TaskReport(name, version, "verified", len(entries))
    for profile, group in sorted(_by_profile(entries).items()):
        if profile not in _profiles():
            problems += [f"{e.member}: profile {profile!r} is not one this ctbench knows" for e in group]
            continue
        data = _task_data(task, profile, workdir, data_roots)
        report.test_cases = len(data.test)
        problems += [p for e in group for p in _verify(e, data, report)]
    return report, problems


def _published_problems(name: str, version: str, entries: list[BundleResult], workdir: Workdir) -> list[str]:
    """Where the task has a published split (shipped, or imported here), every result must be on it:
    the leaderboard compares on who is tested, and a custom split of a subset is not that."""
    from benchmark.data.published import find_published

    published = find_published(name, version, workdir.root)
    if published is None:
        return []
    return [f"{e.member}: its split is not the published split of {name}@{version} (membership "
            f"{e.result.splits.split_membership[:12]}, published {published.split_membership[:12]})"
            for e in entries if e.result.splits.split_membership != published.split_membership]


def _by_profile(entries: list[BundleResult]) -> dict[str, list[BundleResult]]:
    groups: dict[str, list[BundleResult]] = defaultdict(list)
    for entry in entries:
        groups[entry.result.job.profile].append(entry)
    return groups


def _profiles() -> dict:
    from benchmark.evaluation.profiles import PROFILES

    return PROFILES


def _task_data(task, profile: str, workdir: Workdir, data_roots: dict[str, Path]):
    """The maintainer's slices and split, prepared as a job of that profile prepares them."""
    from benchmark.core.specs import RunSpec
    from benchmark.execution.job_runner import prepare_task

    spec = RunSpec(checkpoints=[], tasks=[task.spec.name], data_roots=data_roots, profile=profile)
    return prepare_task(task, spec, workdir, _profiles()[profile])


# ---------------------------------------------------------------- one result


def _verify(entry: BundleResult, data, report: TaskReport) -> list[str]:
    """Split, budget, case ids and every metric, against the maintainer's data."""
    problems = _membership_problems(entry, data)
    arrays, found = _arrays(entry)
    if arrays is None:
        return problems + found
    labels, patients, found = _maintainers_rows(entry, arrays, data)
    if labels is None:
        return problems + found
    problems += found + _label_problems(entry, arrays, labels, patients)
    return problems + _metric_problems(entry, data.task.spec, labels, patients, arrays, report)


def _self_consistent(entry: BundleResult, task, report: TaskReport) -> list[str]:
    """Without the data: only that the stored metrics follow from the bundle's own predictions, scored
    as this ctbench's task scores them (its metrics and main metric, never the bundle's task section)."""
    arrays, problems = _arrays(entry)
    if arrays is None:
        return problems
    counts = entry.result.counts
    n = len(arrays["case_ids"])
    if counts is not None and counts.test_cases is not None and counts.test_cases != n:
        problems.append(f"{entry.predictions_member}: holds {n} cases, its result says {counts.test_cases} "
                        "were tested")
    try:
        spec = _scoring_spec(task, entry.result)
    except ValueError as exc:
        return problems + [f"{entry.member}: its task section is not a task spec ({str(exc).splitlines()[0]})"]
    return problems + _metric_problems(entry, spec, arrays["y_true"], arrays["patient_ids"], arrays, report)


def _scoring_spec(task, result: Result):
    """The registry's spec; a task that reads its classes from the data (``bind``: the generic folder
    tasks) takes the class names the submitter's data gave, which only the bundle knows."""
    from benchmark.data.task import Task

    if type(task).bind is Task.bind:
        return task.spec
    return task.spec.model_copy(update={"class_names": result.task.spec().class_names})


def _arrays(entry: BundleResult) -> tuple[dict | None, list[str]]:
    """The predictions, one row per case in every array, each case once."""
    where = entry.predictions_member
    try:
        arrays = entry.predictions()
    except ValueError as exc:
        return None, [f"{where}: {exc}"]
    cases = np.asarray(arrays["case_ids"]).astype(str)
    if cases.ndim != 1:
        return None, [f"{where}: case_ids is not a list of ids"]
    uneven = [k for k, v in sorted(arrays.items()) if np.ndim(v) == 0 or len(v) != len(cases)]
    if uneven:
        return None, [f"{where}: {', '.join(uneven)} do not hold one row per case ({len(cases)} cases)"]
    unique, counts = np.unique(cases, return_counts=True)
    if (counts > 1).any():
        return None, [f"{where}: names case {str(unique[counts > 1][0])!r} more than once"]
    return {**arrays, "case_ids": cases}, []


def _membership_problems(entry: BundleResult, data) -> list[str]:
    """The maintainer's split, and the budget this job draws in it, must have the recorded hashes."""
    from benchmark.data.membership import budget_membership, split_membership

    job, splits = entry.result.job, entry.result.splits
    ours = split_membership(data.split.payload)
    if splits.split_membership != ours:
        return [f"{entry.member}: its split differs from the maintainer's (membership {splits.split_membership[:12]}, "
                f"here {ours[:12]}): another split or another copy of the data"]
    budget = _budget(entry, data)
    if budget is None:
        return [f"{entry.member}: protocol {job.protocol!r} is not one this ctbench knows"]
    if budget_membership(budget.payload, data.split.payload) != splits.budget_membership:
        return [f"{entry.member}: its label budget (seed {job.seed}, scale {job.scale:g}) differs from the one "
                "drawn here in the same split"]
    return []


def _budget(entry: BundleResult, data):
    """The budget the job runner draws for this job (``job_budget``), or None for an unknown protocol."""
    from benchmark.evaluation.protocols import PROTOCOLS
    from benchmark.execution.job_runner import holds_out, job_budget

    job = entry.result.job
    try:
        protocol = PROTOCOLS.get(job.protocol)
    except RegistryError:
        return None
    holdout = holds_out(protocol, _profiles()[job.profile], data)
    return job_budget(data, job.seed, job.scale, job.budget_unit or "patient", holdout)


def _maintainers_rows(entry: BundleResult, arrays: dict, data) -> tuple:
    """The maintainer's labels and patient ids for the bundle's cases, in the bundle's order; the
    cases must be exactly the maintainer's test set."""
    test = np.asarray(data.test)
    ours = np.asarray(data.slices.case_ids[test]).astype(str)
    theirs = arrays["case_ids"]
    missing, extra = sorted(set(ours.tolist()) - set(theirs.tolist())), sorted(set(theirs.tolist()) - set(ours.tolist()))
    if missing or extra:
        first = [f"{len(missing)} test case(s) missing" + (f" (first {missing[0]!r})" if missing else ""),
                 f"{len(extra)} case(s) not in it" + (f" (first {extra[0]!r})" if extra else "")]
        return None, None, [f"{entry.predictions_member}: its predictions cover other cases than the test set: "
                            + ", ".join(first)]
    position = {case: i for i, case in enumerate(ours)}
    rows = test[[position[case] for case in theirs]]
    return np.asarray(data.slices.labels[rows]), np.asarray(data.slices.patient_ids[rows]), []


def _label_problems(entry: BundleResult, arrays: dict, labels: np.ndarray, patients: np.ndarray) -> list[str]:
    """The bundle's own truth and patients must be the maintainer's: the stored file keeps them."""
    where, problems = entry.predictions_member, []
    differing = int((np.asarray(arrays["patient_ids"]).astype(str) != patients.astype(str)).sum())
    if differing:
        problems.append(f"{where}: patient_ids differ from the maintainer's for {differing} case(s)")
    truth = np.asarray(arrays["y_true"])
    if truth.shape != labels.shape:
        return problems + [f"{where}: y_true has shape {truth.shape}, the maintainer's labels {labels.shape}"]
    wrong = int((truth.reshape(len(truth), -1) != labels.reshape(len(labels), -1)).any(axis=1).sum())
    if wrong:
        problems.append(f"{where}: y_true differs from the maintainer's labels for {wrong} case(s)")
    return problems


def _metric_problems(entry: BundleResult, spec, labels, patients, arrays: dict, report: TaskReport) -> list[str]:
    from benchmark.evaluation.metrics import score

    predictions = {k: arrays[k] for k in PREDICTION_ARRAYS if k in arrays}
    try:
        recomputed = score(spec, np.asarray(labels), np.asarray(patients), predictions)
    except (ValueError, KeyError, IndexError, TypeError) as exc:
        return [f"{entry.predictions_member}: cannot be scored ({exc})"]
    report.metrics |= set(recomputed)
    return [f"{entry.member}: {p}" for p in metric_differences(entry.result, recomputed, spec)]


def metric_differences(result: Result, recomputed: dict[str, float], spec) -> list[str]:
    """Every stored metric (and the main one) against its recomputation, one line per difference."""
    problems = [f"metrics[{name!r}] is not a metric of task {spec.name}" for name in sorted(result.metrics)
                if name not in recomputed]
    for name, (old, new) in sorted(differences(result.metrics, recomputed, METRIC_TOLERANCE).items()):
        problems.append(f"metrics lacks {name!r} (the predictions give {new:.6g})" if old == "missing"
                        else f"metrics[{name!r}] is {old}, the predictions give {new:.6g}")
    main = result.main_metric
    if main is None or (main.name, main.higher_is_better) != (spec.main_metric, spec.higher_is_better):
        problems.append(f"main_metric is not the task's ({spec.main_metric})")
    elif not same_metric(main.value, recomputed.get(main.name, math.nan), METRIC_TOLERANCE):
        problems.append(f"main_metric.value is {main.value}, the predictions give {recomputed[main.name]:.6g}")
    return problems


# ---------------------------------------------------------------- storing


def store_bundle(bundle: Bundle, statuses: dict[str, str], workdir: Workdir) -> tuple[Path, bool]:
    """Write the folder whole (a temp folder renamed into place); the same outcome again writes nothing."""
    folder = ingested_dir(workdir) / f"{bundle.checkpoint}--{bundle.sha256[:12]}"
    files = _files(bundle, statuses)
    if _holds(folder, files):
        return folder, False
    with temp_folder(folder) as tmp:
        for relative, data in files.items():
            with atomic_open(tmp / relative, "wb") as handle:
                handle.write(data)
        publish_folder(tmp, folder)
    return folder, True


def _files(bundle: Bundle, statuses: dict[str, str]) -> dict[str, bytes]:
    """Relative path -> bytes: the bundle's manifest, and each result (with its submission section)
    and predictions where ``ResultStore`` keeps them. Every part of every path was validated."""
    files = {"bundle.json": bundle.manifest_bytes}
    for entry in bundle.results:
        job = entry.result.job
        base = f"results/{bundle.checkpoint}/{job.task}/{job.job_id}"
        submitted = _submitted(entry.result, statuses[entry.member], bundle)
        files[f"{base}.json"] = canonical_json(submitted.payload()).encode()
        files[f"{base}.predictions.npz"] = entry.predictions_bytes
    return files


def _submitted(result: Result, status: str, bundle: Bundle) -> Result:
    return Result.from_stored({**result.payload(), "submission": {
        "status": status, "submitter": bundle.manifest.submitter, "bundle_sha256": bundle.sha256,
        "ingested_with": __version__}})


def _holds(folder: Path, files: dict[str, bytes]) -> bool:
    if not folder.is_dir():
        return False
    present = {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file() or p.is_symlink()}
    return present == set(files) and all((folder / name).read_bytes() == data for name, data in files.items())
