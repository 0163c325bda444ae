"""Expand a Matrix into concrete jobs: axes x include/exclude -> a job graph (pure)."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field, replace
from typing import Any

from pipeline.errors import Diagnostic, InputError
from pipeline.features import FeatureSet
from pipeline.matrix import AXES, JobSpec, Matrix
from pipeline.yamlmarks import mark_of

FILTER_KEYS = ("job", *AXES)


@dataclass(frozen=True)
class Job:
    """One cell of the matrix: a runnable job with a stable id like `kmod-build/6.12`."""

    id: str
    spec: JobSpec
    kernel: str | None = None
    features: FeatureSet | None = None
    needs: tuple[str, ...] = ()
    env: dict[str, str] = field(default_factory=dict)
    timeout: int = 0

    @property
    def name(self) -> str:
        """The declared job name (`kmod-build`)."""
        return self.spec.name

    def axes(self) -> dict[str, str]:
        """Axis values of this cell (only those it has)."""
        values = {}
        if self.kernel is not None:
            values["kernel"] = self.kernel
        if self.features is not None:
            values["features"] = self.features.name
        return values

    def job_env(self) -> dict[str, str]:
        """Environment given to every step: declared env plus the cell's axis values."""
        env = dict(self.spec.env)
        if self.kernel is not None:
            env["KERNEL"] = self.kernel
        if self.features is not None:
            env["FEATURES"] = self.features.name
            env["CARGO_FEATURE_ARGS"] = self.features.cargo_args()
        env.update(self.env)
        return env


def _cell_id(name: str, cell: dict[str, str]) -> str:
    return "/".join([name, *(cell[a] for a in AXES if a in cell)])


def _matches(entry: dict[str, Any], cell: dict[str, str]) -> bool:
    return all(str(entry[k]) == cell.get(k) for k in FILTER_KEYS if k in entry)


def expand(matrix: Matrix) -> list[Job]:
    """All jobs of the matrix in declaration order, with needs resolved to job ids."""
    diags: list[Diagnostic] = []
    cells: list[dict[str, str]] = []
    for spec in matrix.jobs.values():
        for values in itertools.product(*(matrix.axis_values(a, spec) for a in spec.over)):
            cells.append({"job": spec.name, **dict(zip(spec.over, values, strict=True))})

    used = [False] * len(matrix.exclude)
    kept = []
    for cell in cells:
        hits = [i for i, e in enumerate(matrix.exclude) if _matches(e, cell)]
        for i in hits:
            used[i] = True
        if not hits:
            kept.append(cell)
    for index, was_used in enumerate(used):
        if not was_used:
            matrix.warnings.append(Diagnostic(
                f"exclude[{index}] matches no job", matrix.exclude_marks[index],
                "remove it or fix its values", severity="warning"))

    extras: dict[int, dict[str, Any]] = {}
    for index, entry in enumerate(matrix.include):
        extra = {k: v for k, v in entry.items() if k not in FILTER_KEYS}
        hits = [i for i, cell in enumerate(kept) if _matches(entry, cell)]
        if hits:
            for i in hits:
                extras.setdefault(i, {}).update(extra)
            continue
        if "job" not in entry:
            diags.append(Diagnostic(f"include[{index}] matches no job and names no `job`",
                                    mark_of(entry), "add `job:` to add a new cell"))
            continue
        cell = {k: str(entry[k]) for k in FILTER_KEYS if k in entry}
        kept.append(cell)
        extras[len(kept) - 1] = extra

    jobs: list[Job] = []
    seen: dict[str, int] = {}
    for index, cell in enumerate(kept):
        spec = matrix.jobs[cell["job"]]
        extra = extras.get(index, {})
        job_id = _cell_id(spec.name, cell)
        if job_id in seen:
            diags.append(Diagnostic(f"duplicate job id {job_id!r}", spec.mark,
                                    "an include entry adds a cell that already exists"))
            continue
        seen[job_id] = index
        jobs.append(Job(
            id=job_id, spec=spec, kernel=cell.get("kernel"),
            features=matrix.features[cell["features"]] if "features" in cell else None,
            env={str(k): str(v) for k, v in (extra.get("env") or {}).items()},
            timeout=int(extra.get("timeout", spec.timeout)),
        ))
    for spec in matrix.jobs.values():
        if not any(j.spec is spec for j in jobs):
            diags.append(Diagnostic(f"job {spec.name!r} expands to no cells", spec.mark,
                                    "check `over`, the axis values and `exclude`"))
    if diags:
        raise InputError(diagnostics=diags)
    jobs = _resolve_needs(jobs)
    topological_order(jobs)  # raises on cycles
    return jobs


def _resolve_needs(jobs: list[Job]) -> list[Job]:
    by_id = {j.id: j for j in jobs}
    diags = []
    resolved = []
    for job in jobs:
        needs: list[str] = []
        for need in job.spec.needs:
            if "/" in need:
                if need not in by_id:
                    diags.append(Diagnostic(f"job {job.id!r} needs {need!r}, which is not in "
                                            "the expanded matrix", job.spec.mark,
                                            "check the id with `pipeline list`"))
                needs.append(need)
                continue
            mine = job.axes()
            targets = [
                j.id for j in jobs if j.name == need
                and all(mine.get(a) == v for a, v in j.axes().items() if a in mine)
            ]
            if not targets:
                diags.append(Diagnostic(f"job {job.id!r} needs {need!r}, but no {need!r} cell "
                                        f"matches {mine or 'it'}", job.spec.mark,
                                        "an exclude may have removed it"))
            needs.extend(targets)
        resolved.append(replace(job, needs=tuple(dict.fromkeys(needs))))
    if diags:
        raise InputError(diagnostics=diags)
    return resolved


def topological_order(jobs: list[Job]) -> list[Job]:
    """Jobs ordered so each comes after its needs; a cycle is an InputError."""
    by_id = {j.id: j for j in jobs}
    state: dict[str, int] = {}
    order: list[Job] = []

    def visit(job: Job, trail: list[str]) -> None:
        if state.get(job.id) == 2:
            return
        if state.get(job.id) == 1:
            cycle = [*trail[trail.index(job.id):], job.id]
            raise InputError(f"cyclic needs: {' -> '.join(cycle)}", mark=job.spec.mark,
                             hint="remove one of these needs")
        state[job.id] = 1
        for need in job.needs:
            if need in by_id:
                visit(by_id[need], [*trail, job.id])
        state[job.id] = 2
        order.append(job)

    for job in jobs:
        visit(job, [])
    return order
