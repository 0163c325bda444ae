"""Select jobs by --kernel/--features/--axis/--job and order them (pure)."""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field

from pipeline.errors import InputError
from pipeline.model.expand import Job, topological_order
from pipeline.model.matrix import Matrix
from pipeline.model.schema import did_you_mean


@dataclass(frozen=True)
class Filters:
    """Repeatable CLI filters; empty means everything."""

    kernels: tuple[str, ...] = ()
    features: tuple[str, ...] = ()
    jobs: tuple[str, ...] = ()
    axes: tuple[str, ...] = ()  # "cc=clang": a user axis's value

    def axis_values(self) -> dict[str, set[str]]:
        """--axis NAME=VALUE as axis -> wanted values (repeating an axis means either)."""
        wanted: dict[str, set[str]] = {}
        for given in self.axes:
            name, sep, value = given.partition("=")
            if not sep or not name or not value:
                raise InputError(f"--axis {given!r} is not NAME=VALUE",
                                 hint="e.g. --axis cc=clang")
            wanted.setdefault(name.strip(), set()).add(value.strip())
        return wanted


def kernel_matches(declared: str, wanted: str) -> bool:
    """`6.1` matches 6.1 and 6.1.x, never 6.12."""
    return declared == wanted or declared.startswith(wanted + ".")


@dataclass
class Selection:
    """The jobs to run: chosen ones plus the needs they pull in, in dependency order."""

    jobs: list[Job]
    chosen: set[str] = field(default_factory=set)


def _check_known(matrix: Matrix, filters: Filters) -> None:
    for wanted in filters.kernels:
        if not any(kernel_matches(k, wanted) for k in matrix.kernels):
            hint = did_you_mean(wanted, list(matrix.kernels))
            raise InputError(
                f"kernel {wanted!r} is not declared in {matrix.path.name}; "
                f"declared kernels: {', '.join(matrix.kernels)}",
                hint=hint or "declare it under `kernels:` (see README: other distributions)",
            )
    for wanted in filters.features:
        if wanted not in matrix.features:
            hint = did_you_mean(wanted, list(matrix.features))
            raise InputError(
                f"feature set {wanted!r} is not declared in {matrix.path.name}; "
                f"declared: {', '.join(matrix.features)}", hint=hint)
    for axis, values in filters.axis_values().items():
        if axis not in matrix.axes:
            builtin = axis in ("kernel", "features")
            raise InputError(
                f"--axis {axis}=...: {axis!r} is not a user-defined axis of {matrix.path.name}",
                hint=f"use --{axis}" if builtin else did_you_mean(axis, list(matrix.axes))
                or f"axes: {', '.join(matrix.axes) or 'none declared'}")
        known = list(matrix.axes[axis].values)
        unknown = sorted(values - set(known))
        if unknown:
            raise InputError(f"--axis {axis}={unknown[0]}: axis {axis} has no value "
                             f"{unknown[0]!r}", hint=did_you_mean(unknown[0], known)
                             or f"values: {', '.join(known)}")


def select(matrix: Matrix, jobs: list[Job], filters: Filters,
           only: set[str] | None = None) -> Selection:
    """Apply filters; needs of selected jobs are added so the selection can run.

    `only` (e.g. the jobs a change affects) further restricts the chosen jobs; the
    selection may then be empty.
    """
    _check_known(matrix, filters)
    axes = filters.axis_values()

    def chosen(job: Job) -> bool:
        if filters.kernels and not (
            job.kernel is not None and any(kernel_matches(job.kernel, k) for k in filters.kernels)
        ):
            return False
        if filters.features and not (
            job.features is not None and job.features.name in filters.features
        ):
            return False
        if any(job.axis_values.get(a) not in wanted for a, wanted in axes.items()):
            return False
        return not filters.jobs or any(
            fnmatch.fnmatchcase(job.id, pattern) or fnmatch.fnmatchcase(job.name, pattern)
            for pattern in filters.jobs
        )

    by_id = {j.id: j for j in jobs}
    picked = {j.id for j in jobs if chosen(j)}
    if not picked:
        given = [f"--{name} {value}" for name, values in (
            ("kernel", filters.kernels), ("features", filters.features),
            ("axis", filters.axes), ("job", filters.jobs)) for value in values]
        raise InputError(
            f"no job matches the filters ({' '.join(given)})" if given
            else "no job matches the filters",
            hint="see the job ids with `pipeline list`",
        )
    if only is not None:
        picked &= only
    closure = set(picked)
    stack = list(picked)
    while stack:
        for need in by_id[stack.pop()].needs:
            if need not in closure:
                closure.add(need)
                stack.append(need)
    ordered = [j for j in topological_order(jobs) if j.id in closure]
    return Selection(jobs=ordered, chosen=picked)
