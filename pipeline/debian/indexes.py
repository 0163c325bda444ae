"""The kernel packages a suite offers, verified through the signed chain and kept for a
short while in the user cache (`<cache>/indexes/`, $KMATRIX_INDEX_TTL seconds, default 600),
so the check before every run costs a download at most every ten minutes.

Only verified data is stored: the linux-* entries (name, version, pool path, SHA256) that
came out of a Packages file whose hash the gpgv-verified InRelease lists.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path

from pipeline.debian.archive import (
    ARCH,
    Fetch,
    PinnedPackage,
    http_fetch,
    keyring_of,
    suite_packages,
)
from pipeline.paths import cache_dir

DEFAULT_TTL = 600
Entries = dict[str, list[PinnedPackage]]


def index_ttl() -> float:
    """Seconds a verified index is reused ($KMATRIX_INDEX_TTL, default 600)."""
    try:
        return max(0.0, float(os.environ.get("KMATRIX_INDEX_TTL", DEFAULT_TTL)))
    except ValueError:
        return DEFAULT_TTL


def _cache_file(mirror: str, suite: str, component: str, keyring: str, arch: str) -> Path:
    parts = [mirror.rstrip("/"), suite, component, keyring_of(keyring)]
    key = json.dumps(parts if arch == ARCH else [*parts, arch])
    return cache_dir() / "indexes" / f"{hashlib.sha256(key.encode()).hexdigest()[:24]}.json"


def _load(path: Path, max_age: float) -> Entries | None:
    try:
        data = json.loads(path.read_text())
        if time.time() - float(data["fetched"]) > max_age:
            return None
        return {name: [PinnedPackage(*row) for row in rows]
                for name, rows in data["entries"].items()}
    except (OSError, ValueError, KeyError, TypeError):
        return None  # absent, old or damaged: fetch again


def _store(path: Path, entries: Entries) -> None:
    rows = {name: [[p.package, p.version, p.filename, p.sha256] for p in found]
            for name, found in entries.items()}
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps({"fetched": time.time(), "entries": rows}))
        tmp.replace(path)
    except OSError:
        pass  # a cache that cannot be written only costs a download next time


def kernel_packages(mirror: str, suite: str, component: str, keyring: str,
                    fetch: Fetch = http_fetch, max_age: float | None = None,
                    arch: str = ARCH) -> Entries:
    """The suite component's linux-* packages of `arch`: from the cache when younger than
    `max_age` seconds (default: index_ttl(); 0 always downloads), else through the signed
    chain."""
    path = _cache_file(mirror, suite, component, keyring, arch)
    age = index_ttl() if max_age is None else max_age
    if age > 0 and (cached := _load(path, age)) is not None:
        return cached
    entries = suite_packages(mirror, suite, component, keyring, fetch,
                             *(() if arch == ARCH else (arch,)))
    _store(path, entries)
    return entries
