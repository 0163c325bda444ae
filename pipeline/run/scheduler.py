"""Run a job graph: a job starts once its needs passed (or were cached), up to N at a time."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait

from pipeline.model.expand import Job
from pipeline.results.status import CANCELLED, INTERRUPTED, OK_STATUSES, SKIPPED, JobResult

RunOne = Callable[[Job], JobResult]


def default_parallelism() -> int:
    """Number of CPUs available to this process."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:
        return os.cpu_count() or 1


class Scheduler:
    """Dependency-ordered, bounded-parallel execution with fail-fast and interruption."""

    def __init__(self, run_one: RunOne, parallel: int, fail_fast: bool = False,
                 on_start: Callable[[Job], None] = lambda _j: None,
                 on_finish: Callable[[Job, JobResult], None] = lambda _j, _r: None) -> None:
        self.run_one = run_one
        self.parallel = max(1, parallel)
        self.fail_fast = fail_fast
        self.on_start = on_start
        self.on_finish = on_finish
        self.interrupted = threading.Event()

    def run(self, jobs: list[Job]) -> dict[str, JobResult]:
        """Run `jobs` (in dependency order); returns a result for every job."""
        results: dict[str, JobResult] = {}
        pending = list(jobs)
        running: dict[Future[JobResult], Job] = {}
        stop_new = False
        with ThreadPoolExecutor(max_workers=self.parallel) as pool:
            while pending or running:
                if self.interrupted.is_set():
                    stop_new = True
                for job in list(pending):
                    blocked = [n for n in job.needs if n in results
                               and results[n].status not in OK_STATUSES]
                    if stop_new:
                        reason = INTERRUPTED if self.interrupted.is_set() else CANCELLED
                        results[job.id] = JobResult(job.id, reason,
                                                    message=f"{reason} before start")
                    elif blocked:
                        results[job.id] = JobResult(
                            job.id, SKIPPED,
                            message=f"needs {', '.join(blocked)} which did not pass")
                    elif len(running) < self.parallel and all(n in results for n in job.needs):
                        self.on_start(job)
                        running[pool.submit(self.run_one, job)] = job
                    else:
                        continue
                    pending.remove(job)
                    if job.id in results:
                        self.on_finish(job, results[job.id])
                if not running:
                    # nothing can start: the remaining jobs need jobs outside this run
                    for job in pending:
                        results[job.id] = JobResult(
                            job.id, SKIPPED, message="needs jobs that are not in this run")
                        self.on_finish(job, results[job.id])
                    pending.clear()
                    continue
                done, _ = wait(list(running), timeout=0.5, return_when=FIRST_COMPLETED)
                for future in done:
                    job = running.pop(future)
                    try:
                        result = future.result()
                    except Exception as exc:  # a bug in job code must not lose the run
                        result = JobResult(job.id, "error", message=f"internal error: {exc!r}")
                    results[job.id] = result
                    self.on_finish(job, result)
                    if self.fail_fast and result.status not in OK_STATUSES:
                        stop_new = True
        return results
