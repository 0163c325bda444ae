"""What `pipeline init` finds in a repository: kernel modules and Cargo crates (pure:
works on a list of files and a function that reads one).

A module directory is one whose Kbuild or Makefile assigns `obj-m` (its module names are
the `.o` files named there); a crate is a Cargo.toml with a [package] (its features are
the keys of [features], `default` apart).
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import PurePosixPath

OBJ_M = re.compile(r"^\s*obj-(?:m|\$\([A-Z0-9_]+\))\s*[:+]?=\s*(?P<objs>[^#\n]*)", re.M)
SKIP_DIRS = {".git", "target", "reports", "node_modules", ".venv", "build"}


@dataclass(frozen=True)
class ModuleDir:
    """A directory that builds out-of-tree modules."""

    path: str  # relative to the repository root, "." for the root
    modules: tuple[str, ...]  # module names, e.g. ("hello",) for hello.ko


@dataclass(frozen=True)
class Crate:
    """A Cargo package and its optional features."""

    path: str
    name: str
    features: tuple[str, ...]
    default: tuple[str, ...] = ()
    bins: tuple[str, ...] = field(default=())


@dataclass(frozen=True)
class Found:
    modules: tuple[ModuleDir, ...]
    crates: tuple[Crate, ...]

    @property
    def empty(self) -> bool:
        return not self.modules and not self.crates


def module_names(makefile_text: str) -> list[str]:
    """The module names an `obj-m` assignment builds (`obj-m += a.o b.o`: a, b)."""
    names: list[str] = []
    for match in OBJ_M.finditer(makefile_text):
        for obj in match.group("objs").split():
            if obj.endswith(".o") and obj[:-2] not in names:
                names.append(obj[:-2])
    return names


def crate_of(path: str, text: str) -> Crate | None:
    """A Cargo.toml's package (None for a workspace root or a broken file)."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError:
        return None
    package = data.get("package")
    if not isinstance(package, dict) or "name" not in package:
        return None
    features = data.get("features") if isinstance(data.get("features"), dict) else {}
    bins = [b.get("name") for b in data.get("bin") or [] if isinstance(b, dict)]
    return Crate(path=path, name=str(package["name"]),
                 features=tuple(sorted(f for f in features if f != "default")),
                 default=tuple(str(f) for f in features.get("default") or []),
                 bins=tuple(str(b) for b in bins if b) or (str(package["name"]),))


def detect(files: Iterable[str], read: Callable[[str], str]) -> Found:
    """Module directories and crates among `files` (paths relative to the root)."""
    modules: dict[str, list[str]] = {}
    crates: list[Crate] = []
    for name in sorted(files):
        parts = PurePosixPath(name).parts
        if any(p in SKIP_DIRS for p in parts[:-1]):
            continue
        folder = str(PurePosixPath(name).parent)
        if parts[-1] in ("Kbuild", "Makefile"):
            found = module_names(read(name))
            if found:
                known = modules.setdefault(folder, [])
                known += [m for m in found if m not in known]
        elif parts[-1] == "Cargo.toml":
            crate = crate_of(folder, read(name))
            if crate is not None:
                crates.append(crate)
    return Found(tuple(ModuleDir(p, tuple(m)) for p, m in sorted(modules.items())),
                 tuple(crates))
