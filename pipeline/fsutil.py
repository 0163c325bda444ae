"""Crash- and disk-full-safe file writes (a file is either its old or its new content), hashing.

Every report file (summary.json, junit.xml, index.html, metadata.json, reproduce.sh) is
written to a unique temporary file in the same directory, flushed to disk and renamed over
the target. A failed write (ENOSPC, EIO, ...) removes the temporary file and leaves the
target as it was; the OSError goes to the caller.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path


def _tmp_name(path: Path) -> Path:
    return path.with_name(f".{path.name}.{os.getpid()}.{os.urandom(3).hex()}.tmp")


@contextlib.contextmanager
def atomic_path(path: Path, mode: int | None = None) -> Iterator[Path]:
    """Yield a temporary path to write; on success it replaces `path` (fsynced first)."""
    path = Path(path)
    tmp = _tmp_name(path)
    try:
        yield tmp
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())
        if mode is not None:
            os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


def atomic_write_text(path: Path, text: str, mode: int | None = None) -> None:
    """Write text (UTF-8) to `path` atomically."""
    with atomic_path(path, mode) as tmp:
        tmp.write_text(text, encoding="utf-8")


def atomic_write_bytes(path: Path, data: bytes, mode: int | None = None) -> None:
    """Write bytes to `path` atomically."""
    with atomic_path(path, mode) as tmp:
        tmp.write_bytes(data)


def file_sha256(path: Path) -> str:
    """sha256 of a file's content."""
    import hashlib  # here: a command that hashes nothing does not load OpenSSL

    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def pid_alive(pid: int) -> bool:
    """Whether process `pid` exists (another user's too); a zombie counts as gone."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False
