"""Which jobs a change affects (pure), and which files changed since a git revision.

A job is affected when one of its `inputs` globs matches a changed file (a job without
`inputs` is affected by any change outside reports/); jobs that need an affected job are
affected too. `pipeline run --changed-since` and Buildbot's change filter both use
affected_jobs(); in_inputs() is the one rule for what a job's inputs are, so the same
files key its cached result (plan.keys) and are all it sees at /src (run.inputs).
"""

from __future__ import annotations

import fnmatch
import subprocess
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from pipeline.errors import EnvironmentProblem, InputError


def file_matches(path: str, globs: Iterable[str]) -> bool:
    """fnmatch a repository path against input globs; `dir/**` also matches `dir/x/y`."""
    path = path.removeprefix("./")
    for glob in globs:
        if fnmatch.fnmatchcase(path, glob):
            return True
        if glob.endswith("/**") and (path == glob[:-3] or path.startswith(glob[:-2])):
            return True
    return False


# Never a job's input: run reports (the tracked reports/.gitkeep included).
NOT_INPUTS = ("reports/",)


def in_inputs(path: str, globs: Iterable[str]) -> bool:
    """Is project file `path` one of the inputs `globs` declare (no globs: every project
    file but reports/)?"""
    path = path.removeprefix("./")
    if path.startswith(NOT_INPUTS):
        return False
    globs = tuple(globs)
    return not globs or file_matches(path, globs)


def job_touched(job: Any, paths: list[str]) -> bool:
    """Does one of `paths` match the job's inputs (any project path, for a job without
    inputs)?"""
    return any(in_inputs(p, job.spec.inputs) for p in paths)


def dependents(jobs: list[Any], picked: set[str]) -> set[str]:
    """`picked` plus every job that needs one of them, transitively."""
    needed_by: dict[str, list[str]] = {}
    for job in jobs:
        for need in job.needs:
            needed_by.setdefault(need, []).append(job.id)
    closure = set(picked)
    stack = list(picked)
    while stack:
        for dependent in needed_by.get(stack.pop(), ()):
            if dependent not in closure:
                closure.add(dependent)
                stack.append(dependent)
    return closure


def affected_jobs(jobs: list[Any], changed_paths: Iterable[str]) -> set[str]:
    """Ids of the jobs whose inputs match a changed path, plus the jobs that need them."""
    paths = [p.removeprefix("./") for p in changed_paths]
    return dependents(jobs, {j.id for j in jobs if job_touched(j, paths)})


HINT = "--changed-since needs a git checkout and a known revision (origin/main, HEAD~1, ...)"


def _git(root: Path, *args: str, what: str = "") -> list[str]:
    try:
        proc = subprocess.run(["git", "-C", str(root), *args], capture_output=True,
                              text=True, check=False, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise EnvironmentProblem(f"cannot run git: {exc}") from None
    if proc.returncode != 0:
        lines = proc.stderr.strip().splitlines()
        raise InputError(what or f"git {args[0]}: {lines[-1] if lines else 'failed'}",
                         hint=HINT)
    return [line for line in proc.stdout.split("\0") if line]


def changed_since(root: Path, revision: str) -> list[str]:
    """Files (relative to `root`) that differ from `revision`: committed since, staged,
    unstaged and untracked-but-not-ignored. Renames count as a deletion and an addition."""
    _git(root, "rev-parse", "--is-inside-work-tree", what=f"{root} is not in a git checkout")
    _git(root, "rev-parse", "--verify", "--quiet", f"{revision}^{{commit}}",
         what=f"unknown git revision {revision!r}")
    changed = _git(root, "diff", "--name-only", "--no-renames", "--relative", "-z",
                   revision, "--", ".")
    untracked = _git(root, "ls-files", "--others", "--exclude-standard", "-z", "--", ".")
    return sorted(set(changed) | set(untracked))
