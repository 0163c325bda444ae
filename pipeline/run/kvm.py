"""Decide between KVM and TCG by really running guest code under KVM, once per process.

`/dev/kvm` existing proves nothing (nested setups where KVM_CREATE_VM fails, vCPU setup
aborts, or vCPUs never run are common in CI). The probe uses the machine and CPU model of
the real runs (MACHINE, KVM_CPU) and boots a 64 KiB "BIOS" whose reset vector writes to
QEMU's isa-debug-exit port: QEMU then exits with (0x2a << 1) | 1 = 85. Any other outcome
(error, other code, hang past the timeout) means KVM is not usable. The probe only runs
real-mode code, so vm.run_vm still falls back to TCG when a KVM boot fails.
"""

from __future__ import annotations

import contextlib
import functools
import os
import signal
import subprocess
import tempfile
import time
from pathlib import Path

QEMU = "qemu-system-x86_64"
MACHINE = "q35"  # machine type of every VM run (vm.py uses it too)
KVM_CPU = "host"  # CPU model under KVM; TCG uses vm.MACHINES["amd64"].tcg_cpu (qemu64)
ACCEL_ENV = "KMATRIX_ACCEL"
_PROBE_EXIT = (0x2A << 1) | 1
# mov al, 0x2a ; out 0xf4, al ; hlt  -- at the reset vector (F000:FFF0).
_RESET_CODE = bytes([0xB0, 0x2A, 0xE6, 0xF4, 0xF4])


def kvm_usable(timeout: float = 3.0) -> bool:
    """True if KVM really runs guest code; `KMATRIX_ACCEL=tcg|kvm` forces the answer."""
    forced = os.environ.get(ACCEL_ENV, "").strip().lower()
    if forced in ("kvm", "tcg"):
        return forced == "kvm"
    if forced:
        raise ValueError(f"{ACCEL_ENV} must be 'kvm' or 'tcg', not {forced!r}")
    return _probe_cached(timeout)


def select_accel() -> str:
    """The accelerator to boot with: "kvm" or "tcg"."""
    return "kvm" if kvm_usable() else "tcg"


@functools.cache
def _probe_cached(timeout: float) -> bool:
    return not _KVM_FAILED and probe_kvm(timeout)


_KVM_FAILED: list[str] = []


def mark_kvm_broken(reason: str) -> None:
    """Record that a real KVM boot failed: later select_accel() calls pick TCG."""
    _KVM_FAILED.append(reason)
    _probe_cached.cache_clear()


def probe_command(bios: Path) -> list[str]:
    """QEMU argv that runs the reset-vector probe under KVM."""
    return [
        QEMU, "-accel", "kvm", "-machine", MACHINE, "-cpu", KVM_CPU,
        "-nodefaults", "-no-user-config", "-display", "none", "-monitor", "none",
        "-serial", "none", "-m", "16",
        "-bios", str(bios), "-device", "isa-debug-exit,iobase=0xf4,iosize=4",
    ]  # fmt: skip


def probe_kvm(timeout: float = 3.0) -> bool:
    """Run the probe (uncached); False on any failure or if it outlives `timeout`."""
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        return False
    with tempfile.TemporaryDirectory(prefix="kmatrix-kvm-") as tmp:
        bios = Path(tmp) / "probe.bin"
        image = bytearray(0x10000)
        image[0xFFF0 : 0xFFF0 + len(_RESET_CODE)] = _RESET_CODE
        bios.write_bytes(image)
        try:
            proc = subprocess.Popen(
                probe_command(bios),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
            )
        except OSError:
            return False
        try:
            return proc.wait(timeout=timeout) == _PROBE_EXIT
        except subprocess.TimeoutExpired:
            return False
        finally:
            stop_process(proc, grace=0.0)


def stop_process(proc: subprocess.Popen, grace: float = 2.0) -> None:
    """SIGTERM then (after `grace` s) SIGKILL the child's own session group, and reap it.

    `proc` must have been started with start_new_session=True, so its pgid is its pid and
    nothing but our child and its descendants is signalled. The leader is left unreaped
    (a zombie at most) until the group is killed, so its pid cannot have been reused.
    A child already reaped by the caller is left alone.
    """
    if proc.returncode is not None:
        return
    if not _exited(proc):
        _signal_group(proc, signal.SIGTERM if grace > 0 else signal.SIGKILL)
        deadline = time.monotonic() + grace
        while not _exited(proc) and time.monotonic() < deadline:
            time.sleep(0.05)
    _signal_group(proc, signal.SIGKILL)
    proc.wait()


def _exited(proc: subprocess.Popen) -> bool:
    """Whether the child has exited, without reaping it."""
    try:
        flags = os.WEXITED | os.WNOHANG | os.WNOWAIT
        return os.waitid(os.P_PID, proc.pid, flags) is not None
    except ChildProcessError:
        return True


def _signal_group(proc: subprocess.Popen, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, sig)
