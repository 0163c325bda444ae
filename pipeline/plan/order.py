"""The order a run starts its jobs in: the longest remaining chain first (pure).

A job's chain is its own cost plus the costliest chain of the jobs that need it. On a warm
machine every job costs about the same and the matrix's order stands; on a fresh one, the
job behind the slowest missing image (e.g. the kbuild-rust kernel build) and the jobs
waiting for it start at once instead of after everything listed before them.
"""

from __future__ import annotations

from collections.abc import Callable

from pipeline.model.expand import Job


def chain_costs(jobs: list[Job], cost: Callable[[Job], float]) -> dict[str, float]:
    """Each job's cost plus the largest chain cost of the jobs (in `jobs`) that need it."""
    needed_by: dict[str, list[Job]] = {}
    for job in jobs:
        for need in set(job.needs):
            needed_by.setdefault(need, []).append(job)
    chains: dict[str, float] = {}
    for job in reversed(_dependents_last(jobs, needed_by)):
        after = [chains[d.id] for d in needed_by.get(job.id, ())]
        chains[job.id] = cost(job) + max(after, default=0.0)
    return chains


def _dependents_last(jobs: list[Job], needed_by: dict[str, list[Job]]) -> list[Job]:
    """`jobs` with every job before the jobs that need it (the job graph has no cycles:
    the model rejects them)."""
    ids = {j.id for j in jobs}
    indegree = {j.id: len({n for n in j.needs if n in ids}) for j in jobs}
    ready = [j for j in jobs if indegree[j.id] == 0]
    ordered: list[Job] = []
    while ready:
        job = ready.pop()
        ordered.append(job)
        for dependent in needed_by.get(job.id, ()):
            indegree[dependent.id] -= 1
            if indegree[dependent.id] == 0:
                ready.append(dependent)
    return ordered


def critical_path_first(jobs: list[Job], cost: Callable[[Job], float]) -> list[Job]:
    """`jobs` sorted by chain cost, largest first; equal chains keep their order."""
    chains = chain_costs(jobs, cost)
    return sorted(jobs, key=lambda job: -chains[job.id])
