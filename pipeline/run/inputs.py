"""Hermetic inputs: what a job sees at /src (container jobs) or as $SRC (VM jobs).

A job sees only its inputs (plan.changes.in_inputs: the project files its `inputs` globs
match; without `inputs`, every project file but reports/), i.e. exactly the files its
cache key covers. InputTrees makes one directory per distinct input set per process, of
hard links to the project's files (a copy where a link cannot be made, e.g. across file
systems), and containers mount it read-only at /src. An undeclared file is therefore
absent inside the job: reading it fails, and pipeline.run.undeclared names the `inputs:`
line to add. The trees are removed by close() (at the end of the run, or at exit).
"""

from __future__ import annotations

import atexit
import contextlib
import errno
import hashlib
import os
import secrets
import shutil
import stat
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from pipeline.fsutil import pid_alive
from pipeline.model.expand import Job
from pipeline.paths import cache_dir
from pipeline.plan.keys import SourceTree

if TYPE_CHECKING:
    from pipeline.run.runner import RunContext

STALE_AFTER = 24 * 3600  # s: trees left by a process that died are removed after this
_CONTEXT_LOCK = threading.Lock()


@dataclass(frozen=True)
class InputTree:
    """A prepared tree: where it is and the project files (relative paths) it holds."""

    path: Path
    files: tuple[str, ...]
    globs: tuple[str, ...]
    seconds: float  # how long it took to make (0 when an earlier job of the run made it)
    linked: bool  # hard links (False: copies)

    def describe(self) -> str:
        """One log line's worth: how many files, which globs, how it was made."""
        what = ", ".join(self.globs) if self.globs else "every project file but reports/"
        how = (f"made in {self.seconds * 1000:.1f} ms" if self.seconds
               else "shared with an earlier job")
        return (f"{len(self.files)} files ({what}), "
                f"{'hard links' if self.linked else 'copies'}, {how}")


class InputTrees:
    """One read-only tree per distinct input set, made on first use; thread-safe."""

    def __init__(self, source: SourceTree, base: Path | None = None) -> None:
        self.source = source
        self._base = base
        self._trees: dict[tuple[str, ...], InputTree] = {}
        self._lock = threading.Lock()
        self._link = True  # False once a hard link failed across file systems
        self._closed = False

    def base(self) -> Path:
        """This process's directory of trees (created, and registered for removal)."""
        if self._base is None:
            parent = cache_dir() / "inputs"
            parent.mkdir(parents=True, exist_ok=True)
            _remove_stale(parent)
            self._base = parent / f"{os.getpid()}-{secrets.token_hex(4)}"
            atexit.register(self.close)
        self._base.mkdir(parents=True, exist_ok=True)
        return self._base

    def tree(self, globs: tuple[str, ...]) -> InputTree:
        """The tree of `globs` (made now if this process has not made it yet)."""
        with self._lock:
            found = self._trees.get(globs)
            if found is not None:
                return InputTree(found.path, found.files, globs, 0.0, found.linked)
            started = time.perf_counter()
            name = hashlib.sha256("\0".join(globs).encode()).hexdigest()[:16]
            path = self.base() / name
            shutil.rmtree(path, ignore_errors=True)  # a half-made one from a failed attempt
            files, linked = self._fill(path, self.source.matched(globs))
            made = InputTree(path, tuple(files), globs, time.perf_counter() - started, linked)
            self._trees[globs] = made
            return made

    def _fill(self, path: Path, wanted: list[str]) -> tuple[list[str], bool]:
        """Place `wanted` (relative paths) below `path`: (what was placed, all linked)."""
        path.mkdir(mode=0o755)
        os.chmod(path, 0o755)
        made_dirs = {""}
        placed, linked = [], True
        for rel in wanted:
            origin = self.source.root / rel
            try:
                info = origin.lstat()
            except FileNotFoundError:  # tracked, but deleted in the working tree
                continue
            parent = os.path.dirname(rel)
            if parent not in made_dirs:
                _make_dirs(path, parent, made_dirs)
            target = path / rel
            if stat.S_ISLNK(info.st_mode):
                os.symlink(os.readlink(origin), target)
            elif stat.S_ISREG(info.st_mode):
                linked = self._place(origin, target) and linked
            else:  # a socket, a git submodule's directory, ...: not a file to read
                continue
            placed.append(rel)
        return placed, linked

    def _place(self, origin: Path, target: Path) -> bool:
        """Hard-link `origin` at `target`, or copy it (content, mode, times); True if linked."""
        if self._link:
            try:
                os.link(origin, target)
                return True
            except OSError as exc:
                if exc.errno == errno.EXDEV:
                    self._link = False
        shutil.copy2(origin, target)
        return False

    def close(self) -> None:
        """Remove every tree of this process (the jobs that used them have ended)."""
        with self._lock:
            if self._base is not None and not self._closed:
                shutil.rmtree(self._base, ignore_errors=True)
            self._closed = True
            self._trees.clear()
        with contextlib.suppress(ValueError):
            atexit.unregister(self.close)


def _make_dirs(root: Path, rel: str, made: set[str]) -> None:
    """Create `rel` and its parents below `root`, world-readable (the job's user reads)."""
    parts = rel.split("/")
    for depth in range(1, len(parts) + 1):
        sub = "/".join(parts[:depth])
        if sub not in made:
            directory = root / sub
            directory.mkdir(exist_ok=True)
            os.chmod(directory, 0o755)
            made.add(sub)


def _remove_stale(parent: Path) -> None:
    """Remove trees of processes that ended without close() (killed) a day ago or more."""
    now = time.time()
    for entry in parent.iterdir():
        pid = entry.name.split("-", 1)[0]
        with contextlib.suppress(OSError, ValueError):
            if now - entry.stat().st_mtime < STALE_AFTER or pid_alive(int(pid)):
                continue
            shutil.rmtree(entry, ignore_errors=True)


def job_tree(ctx: RunContext, job: Job) -> InputTree:
    """The tree of the job's inputs (the context's InputTrees, made on first use)."""
    with _CONTEXT_LOCK:
        if ctx.inputs is None:
            source = ctx.keys.tree if ctx.keys is not None else SourceTree(ctx.root)
            ctx.inputs = InputTrees(source)
    return ctx.inputs.tree(tuple(job.spec.inputs))
