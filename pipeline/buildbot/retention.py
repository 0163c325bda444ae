"""What the master keeps: per-revision results and per-build files, pruned by age and count.

Each finished build's report step prunes (cheap: one directory listing each):
    <results_dir>/<revision>/          at most `revisions` newest, none older than `days`
    <basedir>/artifacts/<buildid>/     at most `builds` newest, none older than `days`
The master's result store is bounded by size (`store_mb`, least recently used first).
The newest revision and the newest build are never removed.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass
from pathlib import Path

DAY = 86400.0


@dataclass(frozen=True)
class Retention:
    """Limits from `.buildbot/kmatrix.yml` `retention:` (0 days: no age limit)."""

    days: float = 30.0
    revisions: int = 50
    builds: int = 1000
    store_mb: int = 2048


def to_prune(ages: dict[str, float], keep: int, days: float, now: float) -> list[str]:
    """Names to remove from {name: mtime}: all but the `keep` newest, and any older than
    `days` (0: no age limit); the newest one always stays."""
    newest_first = sorted(ages, key=lambda n: (ages[n], n), reverse=True)
    doomed = set(newest_first[max(keep, 1):])
    if days > 0:
        doomed |= {n for n in newest_first[1:] if now - ages[n] > days * DAY}
    return sorted(doomed)


def _ages(root: Path) -> dict[str, float]:
    if not root.is_dir():
        return {}
    out = {}
    for path in root.iterdir():
        if path.is_dir() and not path.is_symlink() and not path.name.startswith("."):
            try:
                out[path.name] = path.stat().st_mtime
            except OSError:
                continue
    return out


def prune(results: Path, artifacts: Path, retention: Retention,
          now: float | None = None) -> list[Path]:
    """Remove what the limits do not keep; the removed directories."""
    now = time.time() if now is None else now
    removed = []
    for root, keep in ((results, retention.revisions), (artifacts, retention.builds)):
        for name in to_prune(_ages(root), keep, retention.days, now):
            shutil.rmtree(root / name, ignore_errors=True)
            removed.append(root / name)
    return removed
