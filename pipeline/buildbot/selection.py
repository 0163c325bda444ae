"""Which builders a change or a forced build runs (pure; no Buildbot import).

A builder is one job id. A change selects the jobs whose `inputs` globs match one of its
files (a job without inputs matches every change; a change without files, e.g. a merge
the poller could not list, selects everything). The selection is then closed twice:
jobs that need a selected job are added (their input artifacts change), and the needs of
every selected job are added (each revision's buildset produces exactly the artifacts its
dependent jobs use: see docs/BUILDBOT.md, "Ordering").
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from pipeline.plan.changes import affected_jobs, file_matches, job_touched
from pipeline.plan.select import kernel_matches

ALL = "all"
__all__ = ["ALL", "builders_for_files", "builders_for_force", "close", "file_matches",
           "important", "job_wants", "levels"]


def job_wants(job: Any, files: list[str]) -> bool:
    """Does a change with these files concern this job? (A change without files: yes.)"""
    return not files or job_touched(job, files)


def close(jobs: list[Any], picked: set[str], dependents: bool = True) -> list[str]:
    """Add dependents (optionally) then needs, transitively; job ids in matrix order."""
    by_id = {j.id: j for j in jobs}
    closure = set(picked)
    if dependents:
        changed = True
        while changed:
            changed = False
            for job in jobs:
                if job.id not in closure and any(n in closure for n in job.needs):
                    closure.add(job.id)
                    changed = True
    stack = list(closure)
    while stack:
        for need in by_id[stack.pop()].needs:
            if need in by_id and need not in closure:
                closure.add(need)
                stack.append(need)
    return [j.id for j in jobs if j.id in closure]


def builders_for_files(jobs: list[Any], files: list[str]) -> list[str]:
    """Builders (job ids) that a change touching `files` runs: changes.affected_jobs (all
    jobs for a change without files) plus their needs."""
    picked = affected_jobs(jobs, files) if files else {j.id for j in jobs}
    return close(jobs, picked, dependents=False)


def important(jobs: list[Any], files: list[str]) -> bool:
    """Does a change build anything at all?"""
    return any(job_wants(j, files) for j in jobs)


def builders_for_force(jobs: list[Any], kernel: str = ALL, features: str = ALL,
                       job_name: str = ALL, among: Iterable[str] | None = None,
                       axes: dict[str, str] | None = None) -> list[str]:
    """Builders a forced build runs: the chosen cells (a job without the chosen axis is not
    chosen, as with `pipeline run --kernel` or `--axis cc=clang`), restricted to `among`,
    plus their needs."""
    allowed = set(among) if among is not None else None
    wanted = {a: v for a, v in (axes or {}).items() if v and v != ALL}

    def chosen(job: Any) -> bool:
        if allowed is not None and job.id not in allowed:
            return False
        if kernel and kernel != ALL and not (job.kernel and kernel_matches(job.kernel, kernel)):
            return False
        if features and features != ALL and not (
                job.features is not None and job.features.name == features):
            return False
        if any(job.axis_values.get(a) != v for a, v in wanted.items()):
            return False
        return not job_name or job_name == ALL or job.name == job_name

    return close(jobs, {j.id for j in jobs if chosen(j)}, dependents=False)


def levels(jobs: list[Any]) -> dict[str, int]:
    """Dependency depth of each job: 0 without needs, else 1 + the deepest need."""
    by_id = {j.id: j for j in jobs}
    depth: dict[str, int] = {}

    def visit(job_id: str) -> int:
        if job_id not in depth:
            needs = [n for n in by_id[job_id].needs if n in by_id]
            depth[job_id] = 1 + max(map(visit, needs)) if needs else 0
        return depth[job_id]

    for job in jobs:
        visit(job.id)
    return depth
