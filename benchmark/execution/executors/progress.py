"""Waiting on workers elsewhere: the progress bar counts results and failures in the store."""
from __future__ import annotations

import time
from typing import Callable

from tqdm.auto import tqdm

from benchmark.core.workdir import Workdir
from benchmark.execution.jobstate import JobState
from benchmark.results.job import Job
from benchmark.results.store import ResultStore

POLL_S = 1.0


def wait_with_progress(pending: list[Job], workdir: Workdir, finished: Callable[[], bool], desc: str) -> None:
    """Poll until ``finished()``; every poll is a stat per job, cheap next to any job."""
    store, state = ResultStore(workdir.results), JobState(workdir.jobs)
    ids = {j.job_id for j in pending}
    with tqdm(total=len(pending), desc=desc, unit="job") as bar:
        while True:
            done = finished()
            count = sum(store.is_done(j) for j in pending) + len(ids & state.failed_ids())
            bar.update(min(count, len(pending)) - bar.n)
            if done:
                return
            time.sleep(POLL_S)
