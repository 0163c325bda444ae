"""Paths in compiler and test messages mapped back to the repository.

A job compiles a copy of the sources inside its container (`$WORK/module/chardev.c`) or
reads them at `$SRC` (`/src/kernel/x.c`), and cargo prints paths relative to the crate
(`src/lib.rs`). A reader wants `kernel/chardev.c:66:5`: each `path:line[:col]` whose path
is under the container's work or source mount, or relative, is replaced by the one
repository file that ends with the longest part of it. Ambiguous or unknown paths (kernel
headers under /usr/src, a basename that several files share) are left as they are.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

# path:line or path:line:col; the path has a dot-extension
LOCATION = re.compile(r"(?P<path>(?:[\w.+-]*/)*[\w.+-]+\.\w+):(?P<pos>\d+(?::\d+)?)")
CONTAINER_ROOTS = ("/work/", "/src/", "/tmp/")


class RepoPaths:
    """Maps locations in text to repository paths (pure: built from the file list)."""

    def __init__(self, files: Iterable[str]) -> None:
        self.files = set(files)
        self._by_suffix: dict[str, set[str]] = {}
        for path in self.files:
            parts = path.split("/")
            for start in range(len(parts)):
                self._by_suffix.setdefault("/".join(parts[start:]), set()).add(path)

    def resolve(self, path: str) -> str | None:
        """The repository file `path` stands for, or None."""
        if path.startswith("/"):
            if not path.startswith(CONTAINER_ROOTS):
                return None
            path = path.lstrip("/")
        if path in self.files:
            return path
        parts = [p for p in path.split("/") if p not in ("", ".")]
        for start in range(len(parts)):
            found = self._by_suffix.get("/".join(parts[start:]))
            if found:
                return next(iter(found)) if len(found) == 1 else None
        return None

    def __call__(self, text: str) -> str:
        """`text` with each mappable `path:line[:col]` as `repo/path:line[:col]`."""
        if not text or not self.files:
            return text

        def replace(match: re.Match[str]) -> str:
            found = self.resolve(match.group("path"))
            return f"{found}:{match.group('pos')}" if found else match.group(0)

        return LOCATION.sub(replace, text)


def map_suite(suite: Iterable[Any], to_repo: RepoPaths) -> None:
    """Map the paths in every case's failure/error message and text (in place)."""
    for case in suite:
        for result in case.result:
            if result.message:
                result.message = to_repo(result.message)
            if result.text:
                result.text = to_repo(result.text)
