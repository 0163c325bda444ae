"""Real QEMU boots of a Debian bookworm kernel (no mocks; TCG unless KVM really works).

The kernel package is fetched once with `apt-get download` into
$KMATRIX_TEST_KERNEL_CACHE (default ~/.cache/kmatrix/test-kernels); only the vmlinuz and
one dependency-free in-tree module (crc-itu-t) are kept. The package is the
`-unsigned` twin of what linux-image-amd64 depends on, or $KMATRIX_TEST_KERNEL_PKG.
Every run is bounded by its VmSpec timeouts.
"""

from __future__ import annotations

import lzma
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from pipeline.run import vm

pytestmark = pytest.mark.qemu

MODULE = "kernel/lib/crc-itu-t.ko"
KTAP_CMD = (
    "insmod /lib/modules-test/crc-itu-t.ko && grep -q '^crc_itu_t ' /proc/modules && "
    "printf 'KTAP version 1\\n1..2\\nok 1 a\\nok 2 b\\n'"
)


def _cache_dir() -> Path:
    default = Path.home() / ".cache" / "kmatrix" / "test-kernels"
    return Path(os.environ.get("KMATRIX_TEST_KERNEL_CACHE", default))


def _package_name() -> str:
    if name := os.environ.get("KMATRIX_TEST_KERNEL_PKG"):
        return name
    out = subprocess.run(
        ["apt-cache", "depends", "linux-image-amd64"],
        capture_output=True, text=True, timeout=60,
    ).stdout  # fmt: skip
    for line in out.splitlines():
        dep = line.split(":", 1)[-1].strip()
        if line.strip().startswith("Depends:") and dep.startswith("linux-image-6"):
            return f"{dep}-unsigned"
    raise RuntimeError("apt-cache knows no linux-image-amd64 (run apt-get update)")


def _find(root: Path) -> tuple[Path, Path] | None:
    kernels = sorted(root.glob("*/boot/vmlinuz-*"))
    for kernel in reversed(kernels):
        mods = list(kernel.parent.parent.glob(f"lib/modules/*/{MODULE}"))
        if mods:
            return kernel, mods[0]
    return None


def _fetch(root: Path, package: str) -> None:
    """apt-get download `package`, keep vmlinuz and the test module, drop the .deb."""
    with tempfile.TemporaryDirectory(dir=root) as tmp:
        subprocess.run(
            ["apt-get", "download", package], cwd=tmp, check=True, capture_output=True, timeout=600
        )
        deb = next(Path(tmp).glob("*.deb"))
        dest = Path(tmp) / "x"
        dest.mkdir()
        members = ["./boot/vmlinuz-*", f"./lib/modules/*/{MODULE}*"]
        tar = f"dpkg-deb --fsys-tarfile {deb} | tar -x -C {dest} --wildcards " + " ".join(
            f"'{m}'" for m in members
        )
        subprocess.run(["sh", "-c", tar], check=True, capture_output=True, timeout=600)
        for xz in dest.glob(f"lib/modules/*/{MODULE}.xz"):
            xz.with_suffix("").write_bytes(lzma.decompress(xz.read_bytes()))
        os.replace(dest, root / package)


@pytest.fixture(scope="session")
def debian_kernel() -> tuple[Path, Path]:
    """(vmlinuz, crc-itu-t.ko) of a bookworm kernel, fetched on first use."""
    if shutil.which("qemu-system-x86_64") is None:
        pytest.skip("qemu-system-x86_64 missing (apt-get install qemu-system-x86)")
    busybox = Path("/bin/busybox")
    if not (busybox.is_file() and vm.is_static_elf(busybox)):
        pytest.skip("static /bin/busybox missing (apt-get install busybox-static)")
    root = _cache_dir()
    root.mkdir(parents=True, exist_ok=True)
    if found := _find(root):
        return found
    try:
        _fetch(root, _package_name())
    except (OSError, RuntimeError, StopIteration, subprocess.SubprocessError) as exc:
        detail = getattr(exc, "stderr", b"") or b""
        pytest.skip(f"cannot fetch a Debian kernel into {root}: {exc} {detail[-300:]!r}")
    found = _find(root)
    if found is None:
        pytest.skip(f"kernel package in {root} lacks vmlinuz or {MODULE}")
    return found


@pytest.fixture
def qemu_pids(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Records the pid of every process run_vm starts (the real Popen still runs)."""
    pids: list[int] = []
    real = vm.subprocess.Popen

    class Recording(real):  # type: ignore[misc, valid-type]
        def __init__(self, *args, **kwargs) -> None:
            super().__init__(*args, **kwargs)
            pids.append(self.pid)

    monkeypatch.setattr(vm.subprocess, "Popen", Recording)
    return pids


def _run(kernel: Path, tmp_path: Path, cache: Path, accel: str | None = None, **kw) -> vm.VmResult:
    spec = vm.VmSpec(kernel=kernel, **({"boot_timeout": 60, "timeout": 90} | kw))
    return vm.run_vm(spec, tmp_path / "work", accel=accel, kernel_cache=cache)


def _assert_gone(pids: list[int]) -> None:
    assert pids, "run_vm started no process"
    for pid in pids:
        assert not Path(f"/proc/{pid}").exists(), f"QEMU pid {pid} still exists"


@pytest.fixture(scope="session")
def kernel_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("kernel-cache")


def test_ktap_and_module(debian_kernel, tmp_path, kernel_cache, qemu_pids) -> None:
    kernel, ko = debian_kernel
    r = _run(kernel, tmp_path, kernel_cache, modules=[ko], command=KTAP_CMD, test_timeout=30)
    assert r.status == "ok", r.reason or r.console[-3000:]
    assert r.exit_code == 0
    assert r.ktap == "KTAP version 1\n1..2\nok 1 a\nok 2 b\n"
    assert r.boot_seconds > 0 and r.test_seconds > 0
    assert r.accel in ("kvm", "tcg")
    assert vm.scan_console(r.console) == []
    assert (tmp_path / "work" / "console.log").read_bytes()
    _assert_gone(qemu_pids)


def test_panic(debian_kernel, tmp_path, kernel_cache, qemu_pids) -> None:
    r = _run(debian_kernel[0], tmp_path, kernel_cache, command="echo c > /proc/sysrq-trigger")
    assert r.status == "panic", r.reason
    assert r.exit_code is None
    assert "Kernel panic - not syncing: sysrq triggered crash" in r.reason
    assert "last 30 console lines" in r.reason
    assert [f.kind for f in vm.scan_console(r.console)] == ["panic"]
    _assert_gone(qemu_pids)


def test_hang_times_out(debian_kernel, tmp_path, kernel_cache, qemu_pids) -> None:
    start = time.monotonic()
    r = _run(debian_kernel[0], tmp_path, kernel_cache, command="sleep 1000", timeout=20)
    assert r.status == "timeout", r.reason
    assert r.reason.startswith("timed out after 20 s")
    assert r.exit_code is None
    assert time.monotonic() - start < 30
    _assert_gone(qemu_pids)


def test_test_timeout_detects_hang(debian_kernel, tmp_path, kernel_cache, qemu_pids) -> None:
    cmd = "echo 'KTAP version 1'; echo 1..2; echo 'ok 1 first'; sleep 1000"
    r = _run(debian_kernel[0], tmp_path, kernel_cache, command=cmd, test_timeout=5)
    assert r.status == "timeout", r.reason
    assert "no KTAP result for 5 s" in r.reason and "ok 1 first" in r.reason
    assert r.ktap == "KTAP version 1\n1..2\nok 1 first\n"
    assert 5 <= r.test_seconds < 15
    _assert_gone(qemu_pids)


def test_nonzero_exit_code(debian_kernel, tmp_path, kernel_cache, qemu_pids) -> None:
    r = _run(debian_kernel[0], tmp_path, kernel_cache, command="echo failing; exit 7")
    assert r.status == "ok", r.reason
    assert r.exit_code == 7
    _assert_gone(qemu_pids)


def test_boot_timeout(debian_kernel, tmp_path, kernel_cache, qemu_pids) -> None:
    # Forced TCG: an automatic KVM run would fall back to TCG and mark KVM broken.
    r = _run(debian_kernel[0], tmp_path, kernel_cache, "tcg", command="true", boot_timeout=0.5)
    assert r.status == "boot-timeout", r.reason
    _assert_gone(qemu_pids)
