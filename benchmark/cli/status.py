"""``ctbench status``: where the last run's grid stands, from the result store and job state alone.

It reads files only, so it answers the same on a login node while a SLURM array runs.
"""
from __future__ import annotations

import argparse
import json
from collections import Counter

from benchmark.cli.options import add_workdir
from benchmark.cli.output import print_table
from benchmark.core.errors import ConfigError
from benchmark.core.workdir import Workdir
from benchmark.execution.jobstate import JobState
from benchmark.results.job import Job
from benchmark.results.store import ResultStore

STATES = ("done", "running", "pending", "failed")
TAIL_SHOWN = 5


def add_parser(sub) -> None:
    status = sub.add_parser("status", help="done, running, pending and failed jobs of the last run's grid, per "
                            "task and checkpoint, with each failure's error and log")
    add_workdir(status)
    status.add_argument("--json", action="store_true")
    status.set_defaults(handler=cmd_status)


def job_states(workdir: Workdir) -> tuple[list[Job], dict[str, str], dict[str, dict], dict[str, dict]]:
    state = JobState(workdir.jobs)
    grid = state.read_grid()
    if grid is None:
        raise ConfigError("no grid has run in this workdir yet (`ctbench run` records one)", workdir.jobs / "grid.json")
    jobs = [Job.from_dict(item) for item in grid]
    store, running, failures = ResultStore(workdir.results), state.running(), state.failures()

    def state_of(job: Job) -> str:
        if store.is_done(job):
            return "done"
        if job.job_id in running:
            return "running"
        return "failed" if job.job_id in failures else "pending"

    return jobs, {j.job_id: state_of(j) for j in jobs}, running, failures


def cmd_status(args: argparse.Namespace) -> int:
    workdir = Workdir.resolve(args.workdir)
    jobs, states, running, failures = job_states(workdir)
    counts = Counter((j.task, j.checkpoint, states[j.job_id]) for j in jobs)
    cells = sorted({(j.task, j.checkpoint) for j in jobs})
    failed = {i: failures[i] for i, s in states.items() if s == "failed"}
    resumable = {i: r for i, r in JobState(workdir.jobs).resumable().items() if states.get(i, "done") != "done"}
    if args.json:
        print(json.dumps({"jobs": states, "running": {i: running[i] for i, s in states.items() if s == "running"},
                          "failed": failed, "resumable": resumable}, indent=2, sort_keys=True))
        return 0
    rows = [[task, ck, *(str(counts[(task, ck, s)]) for s in STATES)] for task, ck in cells]
    totals = Counter(states.values())
    print_table(["task", "checkpoint", *STATES], rows + [["total", "", *(str(totals[s]) for s in STATES)]])
    for job_id, where in sorted(running.items()):
        if states.get(job_id) == "running":
            print(f"running: {job_id} on {where.get('host')} pid {where.get('pid')} since {where.get('since')}")
    for job_id, where in resumable.items():
        print(f"resumable: {job_id} from epoch {where.get('epoch')}, step {where.get('step')} "
              f"(saved {where.get('saved_at')})")
    for job_id, record in sorted(failed.items()):
        print(f"failed: {job_id}: {record.get('error')}\n  log: {record.get('log')}")
        for line in record.get("log_tail", [])[-TAIL_SHOWN:]:
            print(f"  | {line}")
    return 0
