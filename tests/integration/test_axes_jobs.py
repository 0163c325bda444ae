"""The shipped matrix's user-axis cells, end to end with real Docker and QEMU.

* `kmod-build/6.12/clang`: the module built with clang (LLVM=1) in the kbuild-clang image
  (the locked kernel's source prepared for clang with Debian's configuration).
* `vm-test/6.12/arm64`: the module and vexctl cross-built for arm64 in amd64 images, then
  Debian's arm64 kernel booted in qemu-system-aarch64 (virt, TCG) with the lock's arm64
  busybox, running the same KTAP suite as the amd64 VM tests.

Each runs `pipeline run --job ...` in a scratch copy of the project without the result
cache. The first run builds the images (a few minutes each; they are kept); then the clang
build takes ~10 s and the arm64 chain ~40 s (the boot and the tests ~10 s under TCG).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from junitparser import Error, Failure, JUnitXml

from tests.conftest import docker_available, run_cli

pytestmark = [
    pytest.mark.docker,
    pytest.mark.qemu,
    pytest.mark.skipif(not docker_available(), reason="Docker Engine not reachable"),
]

NO_CACHE = {"KMATRIX_RESULT_CACHE_MB": "0"}  # no stored results: every job runs
AARCH64, X86_64 = 183, 62  # ELF e_machine


def _cases(junit: Path) -> dict[str, object]:
    xml = JUnitXml.fromfile(str(junit))
    return {f"{c.classname}::{c.name}": c for suite in xml for c in suite}


def _problems(case: object) -> list[Failure | Error]:
    return [r for r in case.result if isinstance(r, Failure | Error)]


def _elf_machine(path: Path) -> int:
    data = path.read_bytes()
    assert data[:4] == b"\x7fELF", path
    return int.from_bytes(data[18:20], "little")


def _locked_abi(project: Path, key: str) -> str:
    return yaml.safe_load((project / "matrix.lock").read_text())["kernels"][key]["abi"]


def test_clang_build_of_the_module(project_copy: Path) -> None:
    proc = run_cli("run", "--job", "kmod-build/6.12/clang", cwd=project_copy, env=NO_CACHE,
                   timeout=3600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    job = project_copy / "reports" / "latest" / "kmod-build" / "6.12" / "clang"
    ko = job / "artifacts" / "vexfs.ko"
    data = ko.read_bytes()
    # compiled by clang (its .comment), not by the kernel's gcc
    assert b"clang version" in data and b"GCC: (" not in data
    assert _elf_machine(ko) == X86_64
    modinfo = (job / "artifacts" / "modinfo.txt").read_text()
    assert f"vermagic:       {_locked_abi(project_copy, '6.12')} " in modinfo
    log = (job / "log.txt").read_text()
    assert "-e AXIS_CC=clang " in (job / "reproduce.sh").read_text()
    assert "-e LLVM=1 " in (job / "reproduce.sh").read_text()  # the axis value's env
    assert "CC [M]" in log and "error" not in log.lower().replace("-werror", "")
    cases = _cases(job / "junit.xml")
    assert cases and not any(_problems(c) for c in cases.values())


def test_arm64_module_boots_in_qemu(project_copy: Path) -> None:
    proc = run_cli("run", "--job", "vm-test/6.12/arm64", cwd=project_copy, env=NO_CACHE,
                   timeout=3600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    latest = project_copy / "reports" / "latest"
    # the needs: cross-built for arm64 in amd64 images
    assert _elf_machine(latest / "kmod-build/6.12/arm64/artifacts/vexfs.ko") == AARCH64
    assert _elf_machine(latest / "kmod-build/6.12/arm64/artifacts/ioctl_smoke") == AARCH64
    assert _elf_machine(latest / "vexctl-static/arm64/artifacts/vexctl") == AARCH64
    modinfo = (latest / "kmod-build/6.12/arm64/artifacts/modinfo.txt").read_text()
    assert f"vermagic:       {_locked_abi(project_copy, '6.12:arm64')} " in modinfo
    job = latest / "vm-test" / "6.12" / "arm64"
    reproduce = (job / "reproduce.sh").read_text()
    assert "qemu-system-aarch64 -accel tcg -machine virt -cpu max" in reproduce
    assert "console=ttyAMA0" in reproduce
    console = (job / "artifacts" / "console.log").read_text(errors="replace")
    assert f"{_locked_abi(project_copy, '6.12:arm64')}" in (job / "log.txt").read_text()
    assert "KMATRIX-EXIT: 0" in console
    cases = _cases(job / "junit.xml")
    ktap = {k.split("::", 1)[1]: c for k, c in cases.items()
            if k.startswith("vm-test/6.12/arm64.ktap")}
    # the same suite as on amd64, vexctl and ioctl_smoke included: nothing skipped
    for name in ("insmod", "mount.dim4", "vectors.get_vector_roundtrip",
                 "search.l2_tie_by_ino", "hybrid_search.tag_eq_l2",
                 "index.search_after_rebuild", "errors.search_k257_e2big", "stats",
                 "ioctl_smoke.search_scan_matches_model", "rmmod", "dmesg_clean"):
        assert name in ktap, sorted(ktap)
    assert len(ktap) >= 100
    assert not [k for k, c in ktap.items() if _problems(c) or c.is_skipped]
    assert not _problems(cases["vm-test/6.12/arm64::vm"])
