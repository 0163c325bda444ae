"""The result cache's store (ResultCache): passed results filed under their key
(pipeline.plan.keys), in $KMATRIX_RESULT_CACHE_DIR, else <kmatrix cache>/results
($KMATRIX_CACHE_DIR/results, default ~/.cache/kmatrix/results):
    v1/<key[:2]>/<key>/manifest.json   {"sha256": of the body, "body": {files, info, ...}}
    v1/<key[:2]>/<key>/files/...       junit.xml, log.txt, metadata.json, artifacts/...
An entry is written to tmp/ and renamed into place (the first writer of a key wins; readers
never see partial entries) and removed by renaming it to trash/ first. Reading checks the
manifest checksum, each file's size and, while copying, its sha256: a corrupt entry is a
warning, is discarded and the job runs. A file whose content was hashed on an earlier
restore is not hashed again while its inode, size, mtime and ctime are unchanged (recorded
in the entry's verified.json; any write or chmod moves the ctime, which no program can set
back): it is only copied, and checked to be unchanged before and after the copy. A file
changed less than RACY_NS before it was hashed is not recorded (the clock the kernel
stamps files with is coarse), so it is hashed again next time. Size is bounded
($KMATRIX_RESULT_CACHE_MB, default 2048; 0 disables the cache): after a store, least
recently used entries (manifest mtime, touched on every hit) are removed until the total
is under the bound.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import os
import secrets
import shutil
import stat
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pipeline.fsutil import file_sha256
from pipeline.paths import cache_dir
from pipeline.plan.keys import CACHE_FORMAT, sha256_json

DEFAULT_LIMIT_MB = 2048
LOW_WATER = 0.9  # pruning goes down to this fraction of the bound
STALE_TMP_SECONDS = 3600
VERIFIED = "verified.json"  # {relative path: stamp} of files hashed on an earlier restore
RACY_NS = 2_000_000_000
Warn = Callable[[str], None]


def result_cache_root() -> Path:
    """$KMATRIX_RESULT_CACHE_DIR, else <kmatrix cache dir>/results."""
    explicit = os.environ.get("KMATRIX_RESULT_CACHE_DIR")
    return Path(explicit) if explicit else cache_dir() / "results"


def result_cache_limit() -> int:
    """The size bound in bytes ($KMATRIX_RESULT_CACHE_MB, default 2048; 0 = disabled)."""
    raw = os.environ.get("KMATRIX_RESULT_CACHE_MB", "").strip()
    try:
        megabytes = float(raw) if raw else DEFAULT_LIMIT_MB
    except ValueError:
        megabytes = DEFAULT_LIMIT_MB
    return max(0, int(megabytes * 1024 * 1024))


class CorruptEntry(Exception):
    """A stored entry does not match its manifest."""


@dataclass
class Entry:
    """A stored result: its directory and manifest body."""

    key: str
    path: Path
    body: dict[str, Any]

    @property
    def info(self) -> dict[str, Any]:
        """What the runner stored with it (job, run, result counts, ...)."""
        return dict(self.body.get("info") or {})


@contextlib.contextmanager
def _try_lock(path: Path) -> Iterator[bool]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _copy_hashing(src: Path, dest: Path) -> tuple[int, str]:
    digest = hashlib.sha256()
    size = 0
    with open(src, "rb") as reader, open(dest, "wb") as writer:
        while chunk := reader.read(1 << 20):
            digest.update(chunk)
            writer.write(chunk)
            size += len(chunk)
    return size, digest.hexdigest()


def _stamp(st: os.stat_result) -> list[int]:
    return [st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns]


def _copy_trusted(src: Path, dest: Path, stamp: list[int]) -> bool:
    """Copy `src` (in the kernel: sendfile) if its stamp is `stamp` before and after; False
    (dest half written) if it is not."""
    with open(src, "rb") as reader, open(dest, "wb") as writer:
        if _stamp(os.fstat(reader.fileno())) != stamp:
            return False
        offset, size = 0, stamp[1]
        while offset < size:
            sent = os.sendfile(writer.fileno(), reader.fileno(), offset, size - offset)
            if sent == 0:
                return False
            offset += sent
        return _stamp(os.fstat(reader.fileno())) == stamp


class ResultCache:
    """Passed job results by key, shared by every run and worker of one machine."""

    def __init__(self, root: Path | None = None, limit: int | None = None,
                 warn: Warn = lambda _m: None) -> None:
        self.root = root or result_cache_root()
        self.limit = result_cache_limit() if limit is None else limit
        self.warn = warn

    @property
    def enabled(self) -> bool:
        return self.limit > 0

    def path(self, key: str) -> Path:
        """Where the entry of a key lives."""
        return self.root / f"v{CACHE_FORMAT}" / key[:2] / key

    # -- reading --------------------------------------------------------------------------
    def _read(self, key: str, path: Path) -> Entry:
        try:
            manifest = json.loads((path / "manifest.json").read_text())
            body = manifest["body"]
            if sha256_json(body) != manifest["sha256"] or body.get("key") != key:
                raise CorruptEntry("manifest checksum mismatch")
            for rel, size, _sha, _mode in body["files"]:
                if rel.startswith("/") or ".." in Path(rel).parts:
                    raise CorruptEntry(f"bad path {rel!r} in the manifest")
                try:
                    found = (path / "files" / rel).stat().st_size
                except OSError:
                    raise CorruptEntry(f"missing file {rel}") from None
                if found != size:
                    raise CorruptEntry(f"{rel} has {found} bytes, the manifest says {size}")
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise CorruptEntry(f"unreadable manifest ({exc.__class__.__name__})") from None
        return Entry(key, path, body)

    def lookup(self, key: str) -> Entry | None:
        """The valid entry of a key (its use is recorded for LRU), or None. A corrupt one
        is reported, discarded and treated as absent."""
        if not self.enabled:
            return None
        path = self.path(key)
        if not path.is_dir():
            return None
        try:
            entry = self._read(key, path)
        except CorruptEntry as exc:
            try:  # replaced or removed by another process while we read it?
                entry = self._read(key, path)
            except CorruptEntry:
                if path.is_dir():  # else it was pruned while we looked: just a miss
                    self.warn(f"result cache entry {key[:16]} is corrupt ({exc}); ignored")
                    self.discard(key)
                return None
        with contextlib.suppress(OSError):
            os.utime(path / "manifest.json")
        return entry

    def restore(self, entry: Entry, dest: Path) -> bool:
        """Copy an entry's files into `dest`, checking each sha256 (or, for a file hashed
        before, that it is unchanged since). False if one differs or is gone: the entry is
        then reported and discarded (silently if it was pruned)."""
        verified = self._verified(entry)
        hashed: dict[str, list[int]] = {}
        try:
            for rel, size, sha, mode in entry.body["files"]:
                source, target = entry.path / "files" / rel, dest / rel
                target.parent.mkdir(parents=True, exist_ok=True)
                stamp = verified.get(rel)
                if stamp is None or not _copy_trusted(source, target, stamp):
                    before = _stamp(os.stat(source))
                    if _copy_hashing(source, target) != (size, sha):
                        raise CorruptEntry(f"{rel}: content differs from the manifest")
                    if time.time_ns() - before[3] > RACY_NS:
                        hashed[rel] = before
                os.chmod(target, mode)
        except (OSError, CorruptEntry) as exc:
            if self._same(entry):  # else it was pruned or replaced while we read it
                reason = exc if isinstance(exc, CorruptEntry) else f"cannot read: {exc}"
                self.warn(f"result cache entry {entry.key[:16]} is corrupt ({reason}); "
                          "ignored")
                self.discard(entry.key)
            return False
        if hashed:
            self._record_verified(entry, {**verified, **hashed})
        return True

    @staticmethod
    def _verified(entry: Entry) -> dict[str, list[int]]:
        try:
            found = json.loads((entry.path / VERIFIED).read_text())
        except (OSError, ValueError):
            return {}
        return found if isinstance(found, dict) else {}

    @staticmethod
    def _record_verified(entry: Entry, stamps: dict[str, list[int]]) -> None:
        """Best effort: a failure only means hashing again next time."""
        tmp = entry.path / f".{VERIFIED}.{os.getpid()}.{secrets.token_hex(4)}"
        try:
            tmp.write_text(json.dumps(stamps))
            os.replace(tmp, entry.path / VERIFIED)
        except OSError:
            with contextlib.suppress(OSError):
                tmp.unlink()

    def _same(self, entry: Entry) -> bool:
        try:
            return self._read(entry.key, entry.path).body == entry.body
        except CorruptEntry:
            return entry.path.is_dir()

    # -- writing --------------------------------------------------------------------------
    def store(self, key: str, source: Path, names: Iterable[str],
              info: dict[str, Any]) -> bool:
        """Store files and directories `names` of `source` under `key`; True if this call
        wrote the entry (False: disabled, or a valid entry already existed)."""
        if not self.enabled:
            return False
        final = self.path(key)
        if final.is_dir() and self._valid(key, final):
            return False
        (self.root / "tmp").mkdir(parents=True, exist_ok=True)
        tmp = self.root / "tmp" / f"{key[:16]}.{os.getpid()}.{secrets.token_hex(4)}"
        try:
            files = self._copy_in(source, names, tmp / "files")
            # "write": this write's own id, so an entry replaced by an identical one within
            # the same second is still told apart from the one a reader started on
            body = {"key": key, "format": CACHE_FORMAT, "write": secrets.token_hex(8),
                    "created": datetime.now(UTC).isoformat(timespec="seconds"),
                    "bytes": sum(f[1] for f in files), "files": files, "info": info}
            manifest = {"sha256": sha256_json(body), "body": body}
            (tmp / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
            final.parent.mkdir(parents=True, exist_ok=True)
            wrote = self._publish(key, tmp, final)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        if wrote:
            self.prune()
        return wrote

    def _copy_in(self, source: Path, names: Iterable[str], dest: Path) -> list[list[Any]]:
        files: list[list[Any]] = []
        for name in names:
            top = source / name
            if top.is_file():
                paths = [top]
            elif top.is_dir():
                paths = sorted(p for p in top.rglob("*") if p.is_file())
            else:
                continue
            for path in paths:
                rel = path.relative_to(source).as_posix()
                (dest / rel).parent.mkdir(parents=True, exist_ok=True)
                size, sha = _copy_hashing(path, dest / rel)
                files.append([rel, size, sha, stat.S_IMODE(path.stat().st_mode)])
        return files

    def adopt(self, path: Path) -> str | None:
        """Take in an entry another store wrote (e.g. uploaded by a Buildbot worker): its
        key if it was valid and is now here, else None (the directory is removed)."""
        try:
            key = json.loads((path / "manifest.json").read_text())["body"]["key"]
        except (OSError, ValueError, KeyError, TypeError):
            key = None
        if not isinstance(key, str) or not key.isalnum() or not self._valid(key, path):
            shutil.rmtree(path, ignore_errors=True)
            return None
        final = self.path(key)
        final.parent.mkdir(parents=True, exist_ok=True)
        if not self._publish(key, path, final):
            shutil.rmtree(path, ignore_errors=True)
        self.prune()
        return key

    def entry_files(self, key: str) -> list[str]:
        """Paths (relative to the entry) of a valid entry's files, manifest last; [] if
        there is no valid entry for the key."""
        path = self.path(key)
        if not path.is_dir() or not self._valid(key, path):
            return []
        body = self._read(key, path).body
        return [f"files/{rel}" for rel, _size, _sha, _mode in body["files"]] + \
            ["manifest.json"]

    def _publish(self, key: str, tmp: Path, final: Path) -> bool:
        for _attempt in range(3):
            try:
                os.rename(tmp, final)
                return True
            except OSError as exc:
                if exc.errno not in (errno.ENOTEMPTY, errno.EEXIST):
                    raise
            if self._valid(key, final):
                return False  # another writer won the race with a good entry
            self.discard(key)  # a corrupt entry: replace it
        return False

    def _valid(self, key: str, path: Path) -> bool:
        try:
            entry = self._read(key, path)
            return all(file_sha256(path / "files" / rel) == sha
                       for rel, _size, sha, _mode in entry.body["files"])
        except (CorruptEntry, OSError):
            return False

    def discard(self, key: str) -> None:
        """Remove an entry (atomically: renamed into trash/ first)."""
        self._remove(self.path(key))

    def _remove(self, path: Path) -> None:
        trash = self.root / "trash"
        trash.mkdir(parents=True, exist_ok=True)
        target = trash / f"{path.name}.{os.getpid()}.{secrets.token_hex(4)}"
        try:
            os.rename(path, target)
        except FileNotFoundError:
            return
        shutil.rmtree(target, ignore_errors=True)

    # -- size bound -----------------------------------------------------------------------
    def entries(self) -> list[tuple[float, int, Path]]:
        """(last use, bytes, path) of every entry."""
        out = []
        base = self.root / f"v{CACHE_FORMAT}"
        for shard in (base.iterdir() if base.is_dir() else ()):
            for path in (shard.iterdir() if shard.is_dir() else ()):
                manifest = path / "manifest.json"
                try:
                    used = manifest.stat().st_mtime
                    size = int(json.loads(manifest.read_text())["body"]["bytes"])
                    size += manifest.stat().st_size
                except (OSError, ValueError, KeyError, TypeError):
                    used, size = 0.0, _du(path)  # broken entries go first
                out.append((used, size, path))
        return out

    def prune(self, limit: int | None = None) -> tuple[int, int]:
        """Remove least recently used entries until the total is under LOW_WATER x the
        bound (only when over it); also clears stale temporaries. (removed, bytes left)."""
        limit = self.limit if limit is None else limit
        with _try_lock(self.root / "prune.lock") as locked:
            if not locked:
                return 0, -1  # another process is pruning
            now = time.time()
            for leftover in (self.root / "tmp").glob("*"):
                with contextlib.suppress(OSError):
                    if now - leftover.stat().st_mtime > STALE_TMP_SECONDS:
                        shutil.rmtree(leftover, ignore_errors=True)
            for leftover in (self.root / "trash").glob("*"):
                shutil.rmtree(leftover, ignore_errors=True)
            entries = sorted(self.entries())
            total = sum(size for _, size, _ in entries)
            removed = 0
            if total > limit:
                for _used, size, path in entries:
                    if total <= limit * LOW_WATER:
                        break
                    self._remove(path)
                    total -= size
                    removed += 1
            return removed, total

    def stats(self) -> dict[str, Any]:
        """Entry count, bytes and bound."""
        entries = self.entries()
        return {"root": str(self.root), "entries": len(entries),
                "bytes": sum(size for _, size, _ in entries), "limit": self.limit}

    def clear(self) -> int:
        """Remove every entry; how many."""
        entries = self.entries()
        for _used, _size, path in entries:
            self._remove(path)
        return len(entries)


def _du(path: Path) -> int:
    total = 0
    for item in path.rglob("*"):
        with contextlib.suppress(OSError):
            if item.is_file():
                total += item.stat().st_size
    return total
