"""Well-known locations: the user's cache and the project's matrix file."""

from __future__ import annotations

import os
from pathlib import Path

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
