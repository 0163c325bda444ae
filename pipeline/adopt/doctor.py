"""`pipeline doctor`: can this host run kmatrix? Docker, the tools of host.yml, and KVM;
with `--install`, the missing Debian packages (idempotent)."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from pipeline.errors import EnvironmentProblem

HOST_FILE = Path(__file__).resolve().parent / "host.yml"
Say = Callable[[str], None]


@dataclass(frozen=True)
class Check:
    """One line of the report: what, whether it is there, and what it is needed for."""

    name: str
    ok: bool
    detail: str
    package: str | None = None


def tool_checks(entries: list[dict[str, Any]], which: Callable[[str], str | None] = shutil.which,
                exists: Callable[[str], bool] = os.path.exists) -> list[Check]:
    """host.yml's entries against PATH and the file system (pure given its two lookups)."""
    checks = []
    for entry in entries:
        found = which(entry["command"]) if "command" in entry else (
            entry["file"] if exists(entry["file"]) else None)
        checks.append(Check(entry["name"], found is not None,
                            found or f"missing: needed for {entry['needed-for']}",
                            None if found else entry["package"]))
    return checks


def docker_check() -> Check:
    from pipeline.run.executor import docker_client

    try:
        version = docker_client().version().get("Version", "?")
    except EnvironmentProblem as exc:
        return Check("Docker Engine", False, f"{exc.message} (needed for container jobs)")
    return Check("Docker Engine", True, f"reachable, version {version}")


def kvm_check() -> Check:
    from pipeline.run.kvm import kvm_usable

    if kvm_usable():
        return Check("KVM", True, "usable: VM jobs run accelerated")
    return Check("KVM", True, "not usable here: VM jobs run under TCG (slower, still correct)")


def install(packages: list[str], say: Say) -> None:
    """apt-get install the packages (root, else sudo); EnvironmentProblem when it fails."""
    if not shutil.which("apt-get"):
        raise EnvironmentProblem(f"missing packages {', '.join(packages)}, and this host has "
                                 "no apt-get", hint="install them with the system's tools")
    sudo = [] if os.geteuid() == 0 else ["sudo"]
    say(f"installing {' '.join(packages)}")
    for command in (["apt-get", "update", "-qq"],
                    ["env", "DEBIAN_FRONTEND=noninteractive", "apt-get", "install", "-y",
                     "-qq", "--no-install-recommends", *packages]):
        proc = subprocess.run([*sudo, *command], capture_output=True, text=True)
        if proc.returncode != 0:
            raise EnvironmentProblem(f"{' '.join(command[:3])} failed (exit {proc.returncode})",
                                     hint=(proc.stderr.strip().splitlines() or [""])[-1])


def doctor(do_install: bool, say: Say) -> int:
    """Print each check; 0 when everything needed is there (after installing, if asked)."""
    entries = yaml.safe_load(HOST_FILE.read_text())
    checks = tool_checks(entries)
    missing = sorted({c.package for c in checks if c.package})
    if missing and do_install:
        install(missing, say)
        checks = tool_checks(entries)
        missing = sorted({c.package for c in checks if c.package})
    checks += [docker_check(), kvm_check()]
    for check in checks:
        say(f"{'ok ' if check.ok else 'MISSING'}  {check.name}: {check.detail}")
    if missing:
        say(f"missing Debian packages: {' '.join(missing)} (`pipeline doctor --install`)")
    return 0 if all(c.ok for c in checks) else 1
