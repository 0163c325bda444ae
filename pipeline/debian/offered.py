"""Is matrix.lock still buildable? Each kernel's pinned packages against what its suite offers.

Debian drops old kernel ABIs from a suite every few weeks; a lock that pins one can no longer
be installed. Before any image work a run compares each selected kernel's pinned packages
(name, version and SHA256) with the suite's signed index (pipeline.debian.indexes: cached
for a short while), and `pipeline lock --check` reports every kernel.

In a run:
- a kernel of which everything the run needs is already here (its images are built, the
  kernel a VM job boots is cached) is not checked: the run downloads nothing for it, so
  its index is not fetched either (`pipeline lock --check` still reports its drift);
- a kernel whose pinned packages are gone is an error (exit 2) with the `lock --update`
  hint;
- a pinned package the signed index lists with another SHA256 fails closed (exit 2);
- an index that cannot be downloaded is a warning: the images may well be cached, and an
  image build that needs the mirror fails on its own;
- a kernel pinned to a snapshot is not checked: a snapshot never changes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from pipeline.debian.archive import ChainError, Fetch, http_fetch
from pipeline.debian.indexes import Entries
from pipeline.debian.lock import (
    LOCK_NAME,
    LockedKernel,
    Memo,
    lock_problems,
    offered_entries,
    prefetch,
    read_lock,
    resolve_all,
    resolve_entries,
    write_lock,
)
from pipeline.errors import EnvironmentProblem, InputError, PipelineError
from pipeline.model.kernels import KernelSource

HINT = "run `pipeline lock --update`, or pin a snapshot (see docs/MATRIX.md)"
RUN_CHECK_TIMEOUT = 20  # seconds without progress before a run gives up checking a suite


def _run_fetch(url: str) -> bytes:
    return http_fetch(url, timeout=RUN_CHECK_TIMEOUT)


@dataclass(frozen=True)
class Drift:
    """How a kernel's lock entry compares with its suite today."""

    version: str
    stale: bool  # a pinned package is no longer offered: the lock cannot be installed
    what: str  # e.g. "matrix.lock pins X 1.2, but bookworm now offers Y (1.3)"
    newer: str = ""  # what `lock --update` would move a still-offered kernel to

    @property
    def message(self) -> str:
        """`what`, with the hint when the kernel is stale."""
        return f"{self.what}; {HINT}" if self.stale else self.what


def _offers(source: KernelSource, entries: Entries) -> str:
    """What the suite offers now for a declared kernel: 'abi (version)', or ''."""
    try:
        now = resolve_entries(source, entries)
    except InputError:
        return ""
    return f"{now.abi} ({now.headers.version})"


def compare(source: KernelSource, locked: LockedKernel, entries: Entries) -> Drift:
    """Compare a lock entry with a suite's verified entries (ChainError on a hash that
    differs from the signed index)."""
    suite = locked.suite
    for pinned in locked.packages():
        same = [p for p in entries.get(pinned.package, []) if p.version == pinned.version]
        if same and all(p.sha256 != pinned.sha256 for p in same):
            raise ChainError(
                f"matrix.lock pins {pinned.package} {pinned.version} with SHA256 "
                f"{pinned.sha256[:16]}..., but the signed index of {suite} lists "
                f"{same[0].sha256[:16]}...",
                hint="matrix.lock was edited, or the archive rebuilt the package; check it, "
                     "then run `pipeline lock --update`")
        if not same:
            offers = _offers(source, entries)
            now = f"now offers {offers}" if offers else "no longer offers it"
            return Drift(locked.key, True, f"matrix.lock pins {pinned.package} "
                         f"{pinned.version}, but {suite} {now}")
    offers = _offers(source, entries)
    current = f"{locked.abi} ({locked.headers.version})"
    newer = offers if offers and offers != current else ""
    return Drift(locked.key, False, f"{current} is still offered by {suite}", newer)


def drift_of(source: KernelSource, locked: LockedKernel, fetch: Fetch = http_fetch,
             max_age: float | None = None, memo: Memo | None = None) -> Drift:
    """The drift of one lock entry (a snapshot never drifts)."""
    if locked.snapshot:
        return Drift(locked.key, False, f"{locked.abi} ({locked.headers.version}) is "
                     f"pinned to snapshot {locked.snapshot}: it cannot drift")
    return compare(source, locked, offered_entries(source, fetch, max_age, memo=memo))


def lock_report(sources: Iterable[KernelSource], locked: dict[str, LockedKernel],
                lock_path: Path, fetch: Fetch = http_fetch) -> tuple[list[str], bool]:
    """`pipeline lock --check`: one line per kernel, and whether any drifted (indexes
    are downloaded afresh; an unreachable one is an error)."""
    sources = list(sources)
    lines, drifted = [], False
    memo = prefetch([s for s in sources if not lock_problems(s, locked, lock_path)
                     and not locked[s.key].snapshot], fetch, max_age=0)
    for source in sources:
        problem = lock_problems(source, locked, lock_path)
        if problem:
            lines.append(f"{source.key:<8} stale  {problem}; run `pipeline lock`")
            drifted = True
            continue
        drift = drift_of(source, locked[source.key], fetch, max_age=0, memo=memo)
        drifted = drifted or drift.stale
        state = "stale" if drift.stale else "ok"
        extra = f" (`pipeline lock --update` would move it to {drift.newer})" \
            if drift.newer else ""
        lines.append(f"{source.key:<8} {state:<6} {drift.message}{extra}")
    return lines, drifted


def check_offered(kernels: Iterable[tuple[KernelSource, LockedKernel]],
                  local: Callable[[LockedKernel], bool], warn: Callable[[str], None],
                  fetch: Fetch = _run_fetch) -> None:
    """Before a run builds anything: InputError when a kernel's pinned packages are gone and
    the run would have to download them (see the module's docstring)."""
    kernels = [(s, k) for s, k in kernels if not k.snapshot and not local(k)]
    stale: list[str] = []
    memo = prefetch([s for s, _ in kernels], fetch)
    for source, locked in kernels:
        try:
            drift = drift_of(source, locked, fetch, memo=memo)
        except ChainError:
            raise
        except InputError as exc:  # the mirror answers, but not with this suite
            drift = Drift(locked.key, True, _one_line(exc))
        except EnvironmentProblem as exc:
            warn(f"cannot check that {locked.suite} still offers kernel {locked.key}'s "
                 f"packages ({_one_line(exc)}); going on (its images may be cached)")
            continue
        if drift.stale:
            stale.append(drift.what)
    if stale:
        raise InputError("; ".join(stale), hint=HINT)


def _one_line(exc: PipelineError) -> str:
    return (exc.message or str(exc) or exc.__class__.__name__).splitlines()[0]


def lock_command(sources: Iterable[KernelSource], root: Path, update: bool, check: bool,
                 note: Callable[[str], None]) -> int:
    """`pipeline lock [--update | --check]`: resolve into matrix.lock (exit 0), or with
    `check` only report each kernel's drift (exit 1 if any, nothing written)."""
    path = root / LOCK_NAME
    if check:
        if update:
            raise InputError("--check and --update exclude each other",
                             hint="check first, then update")
        lines, drifted = lock_report(sources, read_lock(path), path)
        print("\n".join(lines))
        return 1 if drifted else 0
    resolved = resolve_all(sources, read_lock(path, strict=False), update, log=note)
    write_lock(path, resolved)
    for version, kernel in resolved.items():
        print(f"{version:<8} {kernel.abi:<28} {kernel.headers.package}={kernel.headers.version}")
    print(f"wrote {path}")
    return 0
