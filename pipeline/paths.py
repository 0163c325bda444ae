"""Well-known locations: the user's cache and the project's matrix file."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Any

from pipeline.errors import InputError

MATRIX_NAME = "matrix.yml"


def cache_dir() -> Path:
    """The kmatrix cache: $KMATRIX_CACHE_DIR, else $XDG_CACHE_HOME/kmatrix, else ~/.cache."""
    explicit = os.environ.get("KMATRIX_CACHE_DIR")
    if explicit:
        path = Path(explicit)
    else:
        xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
        path = Path(xdg) / "kmatrix"
    path.mkdir(parents=True, exist_ok=True)
    return path


def find_matrix(start: Path | None = None, explicit: str | None = None) -> Path:
    """Locate matrix.yml: --matrix PATH, else the current directory or its nearest parent."""
    if explicit:
        path = Path(explicit)
        if path.is_dir():
            path = path / MATRIX_NAME
        if not path.is_file():
            raise InputError(f"{explicit}: no such matrix file", hint="check the --matrix path")
        return path.resolve()
    here = (start or Path.cwd()).resolve()
    for directory in (here, *here.parents):
        candidate = directory / MATRIX_NAME
        if candidate.is_file():
            return candidate
    raise InputError(
        f"no {MATRIX_NAME} in {here} or any parent directory",
        hint="run inside a project that has one, or pass --matrix PATH",
    )


_TEMPLATE_CACHES: dict[Path, Any] = {}


def template_cache(namespace: str) -> Any:
    """A Jinja2 bytecode cache for one environment's templates, under the cache directory
    (templates/<Jinja2 version>/<namespace>/): a template is compiled once, then loaded
    while its source's checksum is unchanged (the check Jinja2 makes on every load). None
    when the cache directory cannot be made; a cache file that cannot be read or written is
    ignored (the template is then compiled as without a cache)."""
    import jinja2

    try:
        folder = cache_dir() / "templates" / jinja2.__version__ / namespace
        if folder not in _TEMPLATE_CACHES:
            folder.mkdir(parents=True, exist_ok=True)
            _TEMPLATE_CACHES[folder] = _quiet_cache(str(folder))
    except OSError:
        return None
    return _TEMPLATE_CACHES[folder]


def _quiet_cache(directory: str) -> Any:
    """jinja2.FileSystemBytecodeCache that ignores files it cannot read or write."""
    import jinja2

    class QuietCache(jinja2.FileSystemBytecodeCache):
        def load_bytecode(self, bucket: Any) -> None:
            with contextlib.suppress(OSError, EOFError, ValueError, TypeError):
                super().load_bytecode(bucket)

        def dump_bytecode(self, bucket: Any) -> None:
            with contextlib.suppress(OSError):
                super().dump_bytecode(bucket)

    return QuietCache(directory)
