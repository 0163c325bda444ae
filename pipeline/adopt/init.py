"""`pipeline init`: a commented matrix.yml (and tests/run-ktap.sh) for the modules and the
crate found in a repository, then matrix.lock."""

from __future__ import annotations

import re
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pipeline.adopt.detect import Crate, Found, ModuleDir, detect
from pipeline.errors import InputError

# Debian's supported kernels (oldstable and stable): what a new matrix starts with
CURRENT_KERNELS = (("6.1", "bookworm"), ("6.12", "trixie"))
KTAP_SCRIPT = "tests/run-ktap.sh"
TEMPLATES = Path(__file__).resolve().parent / "templates"
Say = Callable[[str], None]


def project_files(root: Path) -> list[str]:
    """The repository's files, as the cache keys see them (git's view, else a walk)."""
    from pipeline.plan.keys import SourceTree

    return SourceTree(root).files()


def _slug(path: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", path.lower()).strip("-") or "root"


def _glob(path: str) -> str:
    return "**" if path == "." else f"{path}/**"


def context(root: Path, found: Found) -> dict[str, Any]:
    """The template's values: job names (suffixed when there are several module dirs)."""
    several = len(found.modules) > 1
    modules = [{"path": m.path, "modules": list(m.modules), "glob": _glob(m.path),
                "job": f"kmod-build-{_slug(m.path)}" if several else "kmod-build",
                "vm_job": f"vm-test-{_slug(m.path)}" if several else "vm-test"}
               for m in found.modules]
    crate = _main_crate(found.crates)
    return {"project": root.resolve().name, "modules": modules,
            "kernels": [{"version": v, "suite": s} for v, s in CURRENT_KERNELS],
            "crate": None if crate is None else {
                "name": crate.name, "path": crate.path, "glob": _glob(crate.path),
                "features": list(crate.features)}}


def _main_crate(crates: tuple[Crate, ...]) -> Crate | None:
    """The crate nearest the root (others can be added by hand)."""
    return min(crates, key=lambda c: (c.path.count("/"), c.path), default=None)


def render(name: str, values: dict[str, Any]) -> str:
    from jinja2 import Environment, FileSystemLoader, StrictUndefined

    env = Environment(loader=FileSystemLoader(str(TEMPLATES)), undefined=StrictUndefined,
                      trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True)
    return env.get_template(name).render(**values)


def nothing_found(root: Path, files: int) -> InputError:
    return InputError(
        f"{root}: found no kernel module and no Cargo crate in {files} files",
        hint="pipeline init looks for a Kbuild or Makefile that assigns obj-m (e.g. "
             "`obj-m += hello.o`) and for a Cargo.toml with a [package]; run it at the "
             "root of the module's repository")


def write_files(root: Path, found: Found, force: bool, say: Say) -> list[Path]:
    """matrix.yml and, when missing, tests/run-ktap.sh; returns what was written."""
    matrix = root / "matrix.yml"
    if matrix.exists() and not force:
        raise InputError(f"{matrix} already exists", hint="edit it, or pass --force to "
                         "replace it with a new one")
    values = context(root, found)
    written = []
    if found.modules and not (root / KTAP_SCRIPT).exists():
        script = root / KTAP_SCRIPT
        script.parent.mkdir(parents=True, exist_ok=True)
        names = [n for m in found.modules for n in m.modules]
        script.write_text(render("run-ktap.sh.j2", {"modules": names}))
        script.chmod(script.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
        written.append(script)
    matrix.write_text(render("matrix.yml.j2", values))
    written.append(matrix)
    for module in found.modules:
        say(f"module directory {module.path}/: {', '.join(m + '.ko' for m in module.modules)}")
    if values["crate"]:
        crate = values["crate"]
        say(f"crate {crate['name']} in {crate['path']}/: features "
            f"{', '.join(crate['features']) or '(none besides default)'}")
    return written


def init(root: Path, force: bool, lock: bool, say: Say) -> list[Path]:
    """Detect, write, check that the new matrix loads, then lock its kernels."""
    from pipeline.model.matrix import load_matrix

    files = project_files(root)
    found = detect(files, lambda name: (root / name).read_text(errors="replace"))
    if found.empty:
        raise nothing_found(root, len(files))
    written = write_files(root, found, force, say)
    matrix = load_matrix(root / "matrix.yml")  # a template bug must not reach the user
    if lock:
        from pipeline.debian.offered import lock_command

        lock_command(matrix.kernels.values(), root, update=False, check=False, note=say)
    return written


__all__ = ["CURRENT_KERNELS", "Found", "ModuleDir", "init"]
