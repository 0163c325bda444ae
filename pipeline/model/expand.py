"""Expand a Matrix into concrete jobs: axes x include/exclude -> a job graph (pure)."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field, replace

from pipeline.errors import Diagnostic, InputError
from pipeline.model.axes import ARCH_AXIS, NATIVE_ARCH, axis_variable
from pipeline.model.features import FeatureSet
from pipeline.model.matrix import AXES, JobSpec, Matrix, env_strings
from pipeline.model.yamlmarks import Mark

_NEW = object.__new__
FILTER_KEYS = ("job", *AXES)  # of a matrix without user axes; see Matrix.axis_names()


@dataclass(frozen=True)
class Job:
    """One cell of the matrix: a runnable job with a stable id like `kmod-build/6.12`."""

    id: str
    spec: JobSpec
    kernel: str | None = None
    features: FeatureSet | None = None
    needs: tuple[str, ...] = ()
    env: dict[str, str] = field(default_factory=dict)  # axis values' env, then include env
    timeout: int = 0
    axis_values: dict[str, str] = field(default_factory=dict)  # user axes, declared order

    @property
    def name(self) -> str:
        """The declared job name (`kmod-build`)."""
        return self.spec.name

    @property
    def arch(self) -> str:
        """The Debian architecture of the cell's kernel (its `arch` axis value)."""
        return self.axis_values.get(ARCH_AXIS, NATIVE_ARCH)

    @property
    def kernel_key(self) -> str | None:
        """The cell's matrix.lock entry: its kernel, `6.12:arm64` for another architecture."""
        if self.kernel is None or self.arch == NATIVE_ARCH:
            return self.kernel
        return f"{self.kernel}:{self.arch}"

    def axes(self) -> dict[str, str]:
        """Axis values of this cell (only those it has), in job-id order."""
        values = {}
        if self.kernel is not None:
            values["kernel"] = self.kernel
        if self.features is not None:
            values["features"] = self.features.name
        values.update(self.axis_values)
        return values

    def job_env(self) -> dict[str, str]:
        """Environment given to every step: declared env plus the cell's axis values."""
        env = dict(self.spec.env)
        if self.kernel is not None:
            env["KERNEL"] = self.kernel
        if self.features is not None:
            env["FEATURES"] = self.features.name
            env["CARGO_FEATURE_ARGS"] = self.features.cargo_args()
        for axis, value in self.axis_values.items():
            env[axis_variable(axis)] = value
        env.update(self.env)
        return env


def _cell_id(name: str, cell: dict[str, str], order: tuple[str, ...]) -> str:
    return "/".join([name, *[cell[a] for a in order if a in cell]])


def _describe_axes(axes: dict[str, str]) -> str:
    return ", ".join(f"{axis} {value}" for axis, value in axes.items()) or "no axis values"


def _warn(matrix: Matrix, diagnostic: Diagnostic) -> None:
    if diagnostic not in matrix.warnings:  # expand() may run more than once
        matrix.warnings.append(diagnostic)


@dataclass
class _Cell:
    values: dict[str, str]  # "job" and the axis values
    include: int | None = None  # the include entry that added it
    env: dict[str, str] = field(default_factory=dict)
    timeout: int | None = None


def _exclude(matrix: Matrix, cells: list[_Cell]) -> tuple[list[_Cell], dict[str, list[int]]]:
    keys = ("job", *matrix.axis_names())
    # (the keys an entry gives, their values): a cell matches when its values are those
    filters = [(tuple(k for k in keys if k in e), tuple(str(e[k]) for k in keys if k in e))
               for e in matrix.exclude]
    used = [False] * len(filters)
    removed_by: dict[str, list[int]] = {}  # job -> excludes that removed its cells
    # excludes that can apply to a job: those naming it and those naming no job
    anyjob = [i for i, e in enumerate(matrix.exclude) if "job" not in e]
    per_job = {name: sorted([i for i, e in enumerate(matrix.exclude) if e.get("job") == name]
                            + anyjob) for name in matrix.jobs}
    kept = []
    for cell in cells:
        values = cell.values
        hits = [i for i in per_job[values["job"]]
                if tuple(map(values.get, filters[i][0])) == filters[i][1]]
        for i in hits:
            used[i] = True
            removed_by.setdefault(values["job"], []).append(i)
        if not hits:
            kept.append(cell)
    for index, was_used in enumerate(used):
        if not was_used:
            marks = matrix.exclude_marks
            _warn(matrix, Diagnostic(
                f"exclude[{index}] matches no job", marks[index] if index < len(marks) else None,
                "remove it or fix its values (a job only matches the axes in its `over`)",
                severity="warning"))
    return kept, removed_by


def _include(matrix: Matrix, kept: list[_Cell], diags: list[Diagnostic]) -> None:
    """GitHub Actions semantics: an entry extends every cell that has all of its `job` and
    axis values (a cell lacking one of those axes does not match); an entry that extends no
    cell adds one. Later entries see the cells added by earlier ones."""
    marks = matrix.include_marks
    keys = ("job", *matrix.axis_names())
    by_job: dict[str, list[_Cell]] = {}
    for cell in kept:
        by_job.setdefault(cell.values["job"], []).append(cell)
    for index, entry in enumerate(matrix.include):
        mark = marks[index] if index < len(marks) else None
        axes = [(k, str(entry[k])) for k in keys if k in entry]
        env = env_strings(entry.get("env"))
        timeout = entry.get("timeout")
        scope = by_job.get(str(entry["job"]), []) if "job" in entry else kept
        given, wanted = tuple(k for k, _ in axes), tuple(v for _, v in axes)
        hits = [c for c in scope if tuple(map(c.values.get, given)) == wanted]
        if not hits:
            if "job" not in entry:
                diags.append(Diagnostic(f"include[{index}] matches no job and names no `job`",
                                        mark, "add `job:` to add a new cell"))
                continue
            hits = [_Cell(dict(axes), include=index)]
            kept.append(hits[0])
            by_job.setdefault(hits[0].values["job"], []).append(hits[0])
        for cell in hits:
            cell.env.update(env)  # env entries merge; a later include wins per variable
            if timeout is not None:
                cell.timeout = int(timeout)


def expand(matrix: Matrix) -> list[Job]:
    """All jobs of the matrix in declaration order, with needs resolved to job ids."""
    diags: list[Diagnostic] = []
    cells: list[_Cell] = []
    for spec in matrix.jobs.values():
        axes = spec.over
        for values in itertools.product(*(matrix.axis_values(a, spec) for a in axes)):
            cell = {"job": spec.name}
            cell.update(zip(axes, values, strict=True))
            cells.append(_Cell(cell))
    kept, removed_by = _exclude(matrix, cells)
    _include(matrix, kept, diags)
    ids, chosen = _assign_ids(matrix, kept, diags)
    _check_every_job_has_cells(matrix, chosen, removed_by, diags)
    if not diags:
        needs = _resolve(matrix, chosen, ids, diags)
    if diags:
        raise InputError(diagnostics=diags + matrix.warnings)
    memo: dict[tuple[str, ...], tuple[dict[str, str], dict[str, str], JobSpec]] = {}
    jobs = [_job(matrix, job_id, cell, job_needs, memo)
            for job_id, cell, job_needs in zip(ids, chosen, needs, strict=True)]
    try:
        if _names_may_cycle(jobs):
            topological_order(jobs)  # raises on cycles, naming the cells
    except InputError as exc:
        raise InputError(diagnostics=exc.diagnostics + matrix.warnings) from None
    return jobs


def _job(matrix: Matrix, job_id: str, cell: _Cell, needs: tuple[str, ...],
         memo: dict[tuple[str, ...], tuple[dict[str, str], dict[str, str], JobSpec]]) -> Job:
    """The Job of a kept cell: its user axis values' env (then the includes') and images."""
    name = cell.values["job"]
    spec = matrix.jobs[name]
    features = cell.values.get("features")
    values: dict[str, str] = {}
    env = cell.env
    if matrix.axes and not matrix.axes.keys().isdisjoint(cell.values):
        combo = (name, *map(cell.values.get, matrix.axes))
        if combo not in memo:
            memo[combo] = _settings(matrix, spec, cell.values)
        values, value_env, spec = memo[combo]  # shared by the job's cells, never changed
        env = {**value_env, **cell.env} if cell.env else value_env
    job = _NEW(Job)  # the dataclass __init__ costs 2.5x this (frozen: a setattr per field)
    job.__dict__.update(id=job_id, spec=spec, kernel=cell.values.get("kernel"),
                        features=matrix.features[features] if features is not None else None,
                        needs=needs, env=env, axis_values=values,
                        timeout=cell.timeout if cell.timeout is not None else spec.timeout)
    return job


def _settings(matrix: Matrix, spec: JobSpec, cell: dict[str, str]
              ) -> tuple[dict[str, str], dict[str, str], JobSpec]:
    """(the cell's user axis values, their env, the spec with their image) for one job."""
    values = {a: cell[a] for a in matrix.axes if a in cell}
    settings = [matrix.axes[a].values[v] for a, v in values.items()]
    env = {k: v for s in settings for k, v in s.env.items()}
    image = next((s.images[spec.image] for s in settings if spec.image in s.images), None)
    if image is not None and spec.vm is None:
        spec = replace(spec, image=image)
    return values, env, spec


def _assign_ids(matrix: Matrix, kept: list[_Cell],
                diags: list[Diagnostic]) -> tuple[list[str], list[_Cell]]:
    """Each kept cell's job id; a second cell with the same id is an error (and dropped)."""
    ids: list[str] = []
    chosen: list[_Cell] = []
    seen: dict[str, _Cell] = {}
    order = matrix.axis_names()
    for cell in kept:
        spec = matrix.jobs[cell.values["job"]]
        job_id = _cell_id(spec.name, cell.values, order)
        mark = spec.mark
        if cell.include is not None and cell.include < len(matrix.include_marks):
            mark = matrix.include_marks[cell.include]
        if job_id in seen:
            other = seen[job_id].values
            diags.append(Diagnostic(
                f"two cells of job {spec.name!r} have the id {job_id!r} "
                f"({_describe_axes({k: v for k, v in other.items() if k != 'job'})} and "
                f"{_describe_axes({k: v for k, v in cell.values.items() if k != 'job'})})",
                mark, ("a kernel and a feature set" if not matrix.axes else "values of two "
                       "axes") + " share a name, or an include adds an existing cell: rename "
                "one or drop the include"))
            continue
        if spec.vm is not None and "kernel" not in cell.values:
            diags.append(Diagnostic(f"job id {job_id!r} has `vm:` but no kernel", mark,
                                    "a vm job's cells each need a kernel"))
        kernel = cell.values.get("kernel")
        if ARCH_AXIS in cell.values and cell.values[ARCH_AXIS] != NATIVE_ARCH and kernel \
                and matrix.kernels[kernel].source:
            diags.append(Diagnostic(
                f"job id {job_id!r}: kernel {kernel} is built from source for "
                f"{NATIVE_ARCH} only", mark, "give the arch axis to packaged kernels"))
        seen[job_id] = cell
        ids.append(job_id)
        chosen.append(cell)
    return ids, chosen


def _check_every_job_has_cells(matrix: Matrix, chosen: list[_Cell],
                               removed_by: dict[str, list[int]],
                               diags: list[Diagnostic]) -> None:
    """A declared job that expands to no cell is an error naming what removed them."""
    named = {c.values["job"] for c in chosen}
    for spec in matrix.jobs.values():
        if spec.name not in named:
            by = removed_by.get(spec.name)
            hint = (f"exclude[{', '.join(str(i) for i in dict.fromkeys(by))}] removed all of "
                    "its cells" if by else "check `over` and the axis values")
            diags.append(Diagnostic(f"job {spec.name!r} expands to no cells", spec.mark, hint))


Groups = dict[tuple[tuple[str, ...], tuple[int, int]], dict[tuple[str, ...], list[int]]]


def _groups(cells: list[_Cell], candidates: list[int], key_axes: tuple[str, ...],
            user: frozenset[str]) -> Groups:
    """A need's cells by (the axes they share with a cell over `key_axes`, their rank) and
    the values of those axes. Rank: more shared user axes first, then fewer user axes the
    cell does not have (the plain cell before one an include gave another axis value)."""
    groups: Groups = {}
    for i in candidates:
        theirs = cells[i].values
        shared = tuple(a for a in key_axes if a in theirs)
        rank = (0, 0)
        if user:
            extra = sum(1 for a in theirs if a in user and a not in key_axes)
            rank = (-sum(1 for a in shared if a in user), extra)
        groups.setdefault((shared, rank), {}).setdefault(
            tuple(theirs[a] for a in shared), []).append(i)
    return groups


def _targets(groups: Groups, mine: dict[str, str]) -> list[int]:
    """The matching cells of the best rank, in job order."""
    best: tuple[int, int] | None = None
    targets: list[int] = []
    parts = 0
    for (shared, rank), table in groups.items():
        hit = table.get(tuple(mine[a] for a in shared))
        if not hit or (best is not None and rank > best):
            continue
        if best is None or rank < best:
            best, targets, parts = rank, [], 0
        targets += hit
        parts += 1
    if parts > 1:
        targets.sort()
    return targets


def _resolve(matrix: Matrix, cells: list[_Cell], ids: list[str],
             diags: list[Diagnostic]) -> list[tuple[str, ...]]:
    """Each cell's needs as job ids: a need by name means the cells of that job whose axis
    values agree with this cell's on the axes both have (of those, the closest in user
    axes: see _groups); an exact id means that job."""
    position = {job_id: i for i, job_id in enumerate(ids)}
    by_name: dict[str, list[int]] = {}
    for i, cell in enumerate(cells):
        by_name.setdefault(cell.values["job"], []).append(i)
    order, user = matrix.axis_names(), frozenset(matrix.axes)
    index: dict[tuple[str, tuple[str, ...]], Groups] = {}  # (need, this cell's axes) -> groups
    out: list[tuple[str, ...]] = []
    for cell, job_id in zip(cells, ids, strict=True):
        spec = matrix.jobs[cell.values["job"]]
        mine = {a: cell.values[a] for a in order if a in cell.values}
        key_axes = tuple(mine)
        found: list[int] = []
        for need_index, need in enumerate(spec.needs):
            if "/" in need:
                if need in position:
                    found.append(position[need])
                else:
                    diags.append(Diagnostic(
                        f"job {job_id!r} needs {need!r}, which is not in the expanded matrix",
                        _mark(spec, need_index), "check the id with `pipeline list`"))
                continue
            groups = index.get((need, key_axes))
            if groups is None:
                groups = index[(need, key_axes)] = _groups(cells, by_name.get(need, []),
                                                           key_axes, user)
            if len(groups) == 1:  # one way to match (every matrix without user axes)
                ((shared, _), table), = groups.items()
                targets = table.get(tuple([mine[a] for a in shared]), [])
            else:
                targets = _targets(groups, mine)
            if not targets:
                diags.append(Diagnostic(
                    f"job {job_id!r} needs {need!r}, but no {need!r} cell has "
                    f"{_describe_axes(mine)}", _mark(spec, need_index),
                    "an exclude may have removed it; name an exact job id in `needs`"))
            found += targets
        out.append((ids[found[0]],) if len(found) == 1 else
                   tuple(ids[i] for i in dict.fromkeys(found)))
    return out


def _mark(spec: JobSpec, need_index: int) -> Mark | None:
    """Where a job's need is written (else the job)."""
    marks = spec.needs_marks
    return (marks[need_index] if need_index < len(marks) else None) or spec.mark


def _need_mark(job: Job, target: Job) -> Mark | None:
    for need, mark in zip(job.spec.needs, job.spec.needs_marks, strict=False):
        if need in (target.id, target.name):
            return mark
    return job.spec.mark


def _names_may_cycle(jobs: list[Job]) -> bool:
    """Whether the needs between job names have a cycle: a cycle of cells is one of their
    names too, so when the names have none (the usual case) the cells need no check."""
    name_of = {j.id: j.spec.name for j in jobs}
    edges: dict[str, set[str]] = {}
    for job in jobs:
        if job.needs:
            edges.setdefault(job.spec.name, set()).update(
                name_of[n] for n in job.needs if n in name_of)
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    for root in edges:
        if root in state:
            continue
        state[root], trail, stack = 1, [root], [iter(edges[root])]
        while stack:
            name = next(stack[-1], None)
            if name is None:
                stack.pop()
                state[trail.pop()] = 2
            elif state.get(name) == 1:
                return True
            elif name not in state:
                state[name] = 1
                trail.append(name)
                stack.append(iter(edges.get(name, ())))
    return False


def topological_order(jobs: list[Job]) -> list[Job]:
    """Jobs ordered so each comes after its needs; a cycle is an InputError."""
    by_id = {j.id: j for j in jobs}
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    order: list[Job] = []
    for root in jobs:
        if state.get(root.id) == 2:
            continue
        state[root.id] = 1
        path = [root]
        stack = [iter([n for n in root.needs if n in by_id])]
        while stack:
            need = next(stack[-1], None)
            if need is None:
                stack.pop()
                done = path.pop()
                state[done.id] = 2
                order.append(done)
                continue
            if state.get(need) == 2:
                continue
            target = by_id[need]
            if state.get(need) == 1:
                ring = [j.id for j in path[[j.id for j in path].index(need):]]
                start = path[len(path) - len(ring)]
                nxt = by_id[ring[1]] if len(ring) > 1 else start
                raise InputError(f"cyclic needs: {' -> '.join([*ring, need])}",
                                 mark=_need_mark(start, nxt),
                                 hint="remove one of these needs")
            state[need] = 1
            path.append(target)
            stack.append(iter([n for n in target.needs if n in by_id]))
    return order
