"""Undeclared inputs: which project files a failed job tried to read outside its inputs.

A job sees only its inputs (pipeline.run.inputs), so reading another project file fails.
missing_inputs() finds such files in the job's output: absolute paths below /src (shell,
cp, make, cargo's "couldn't read", a test's "not found", ...) and the relative paths of
compiler errors (`fatal error: x.h: No such file or directory`), on lines that say
something is missing, that name a project file or directory the job's inputs leave out.
inputs_hint() turns them into the `inputs:` line to add.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Iterable, Sequence
from pathlib import Path

from pipeline.model.expand import Job

SRC = "/src"
MISSING = re.compile(
    r"no such file|not found|couldn't read|could not read|does not exist|cannot stat|"
    r"cannot open|can't open|cannot access|failed to read|could not find|no rule to make",
    re.IGNORECASE)
# an absolute path below /src (not /usr/src/...), up to a quote, space, colon or escape
SRC_PATH = re.compile(r"(?<![\w./-])/src(/[^\s'\"`:,;()\[\]{}<>\\]*)")
# compilers: `fatal error: include/x.h: No such file...`, clang's `'x.h' file not found`
COMPILER = re.compile(r"fatal error: ([^\s:'\"]+): No such file|'([^'\s]+)' file not found")
MOST = 5  # paths named in a message


def _normal(rel: str) -> str | None:
    """A /src-relative path, normalised (`userspace/../kernel/x` -> `kernel/x`); None above
    the root."""
    rel = posixpath.normpath(rel.strip("/")) if rel.strip("/") else "."
    if rel == "." or rel.startswith("../") or rel == "..":
        return None
    return rel


def _lookup(rel: str, project: Sequence[str], available: set[str]) -> str | None:
    """`rel` as a project file or directory the job does not have, else None."""
    for candidate in (rel, rel.rstrip(".")):
        if candidate in available:
            return None
        if candidate in project:
            return candidate
        prefix = candidate + "/"
        inside = [f for f in project if f.startswith(prefix)]
        if inside and not any(f.startswith(prefix) for f in available):
            return candidate + "/"
    return None


def missing_inputs(output: str, project: Iterable[str], available: Iterable[str]) -> list[str]:
    """Project paths (files, or directories ending in `/`) that `output` says are missing
    and that are not among the job's `available` files, in order of appearance."""
    files = sorted(set(project))
    have = set(available)
    found: list[str] = []
    for line in output.splitlines():
        if not MISSING.search(line):
            continue
        for match in SRC_PATH.finditer(line):
            rel = _normal(match.group(1))
            hit = _lookup(rel, files, have) if rel else None
            if hit and hit not in found:
                found.append(hit)
        for match in COMPILER.finditer(line):
            name = _normal(match.group(1) or match.group(2) or "")
            if not name or name.startswith("/"):
                continue
            for candidate in files:  # relative to some include directory: by its tail
                if (candidate == name or candidate.endswith("/" + name)) \
                        and candidate not in have and candidate not in found:
                    found.append(candidate)
    return found


def glob_for(path: str) -> str:
    """The `inputs` glob that adds a path: a file itself, a directory with all below it."""
    return path + "**" if path.endswith("/") else path


def inputs_hint(job: Job, paths: list[str]) -> str:
    """`add "a", "b" to inputs: of job x (matrix.yml:12)`, with the job's present inputs."""
    shown = ", ".join(f'"{glob_for(p)}"' for p in paths[:MOST])
    more = f" (and {len(paths) - MOST} more)" if len(paths) > MOST else ""
    mark = job.spec.mark
    where = f" ({Path(mark.path).name}:{mark.line})" if mark is not None else ""
    now = (", ".join(f'"{g}"' for g in job.spec.inputs) if job.spec.inputs else "")
    current = f"; its inputs now: [{now}]" if now else ""
    return f"add {shown}{more} to inputs: of job {job.name}{where}{current}"


def undeclared_message(job: Job, paths: list[str]) -> str:
    """The sentence a failed job's message gets when it read undeclared files."""
    named = ", ".join(p.rstrip("/") for p in paths[:MOST])
    return (f"it read {named}, not in its inputs (a job sees only its inputs at $SRC); "
            f"{inputs_hint(job, paths)}")
