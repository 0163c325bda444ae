"""Boot a kernel in QEMU with a busybox initramfs, run one command, report what happened.

Host side only; every path is an argument and nothing is written outside `workdir` (it gets
initramfs.cpio.gz, console.log and, unless run_vm is given a shared `kernel_cache`,
kernel-cache/ with the ~65 MB decompressed PVH vmlinux).

The kernel's Debian architecture (VmSpec.arch) picks QEMU's binary, machine, CPU and serial
console (MACHINES): amd64 boots in qemu-system-x86_64 (q35; KVM when it works), arm64 in
qemu-system-aarch64 (virt, TCG) with the lock's arm64 busybox (VmSpec.busybox).

Console protocol (the serial console, ttyS0 or ttyAMA0, read live from QEMU's stdout):
  * the init prints START_MARKER once the pseudo filesystems are mounted,
  * runs `spec.command` with its output on the console,
  * prints ``KMATRIX-EXIT: <code>`` and powers off (``-no-reboot`` makes QEMU exit).
The boot itself runs with ``quiet``; the init then raises the console loglevel so that every
kernel message of the test phase (module load, oops, WARNING, ...) is on the console live,
interleaved with the command's output. Nothing is dumped from dmesg afterwards. QEMU's own
stderr is merged into the console text. A kernel message that lands between a marker and its
line end is split off the marker (`_unglue`).

Under TCG the guest gets the measured fast settings (BASE_APPEND, MACHINES; bench/README.md
"VM boot"): `-cpu qemu64`, no crypto self-tests at boot, `tsc=reliable`, a PVH kernel.

Statuses: "ok" means the command ran to completion and its exit code was reported (a
nonzero code is still "ok": judging it is the caller's business); "panic" wins over
everything; "boot-timeout", "timeout" (whole run or per-test hang), "interrupted" (the
caller's `cancel` event was set: Ctrl-C / SIGTERM of the run) and "error" (QEMU could not
start or stopped without an exit marker) have `exit_code` None.

A VmSpec `label` is passed as QEMU's `-name`, so a run's QEMU processes can be recognised
(e.g. by tests looking for leftovers) without matching process names.
"""

from __future__ import annotations

import os
import re
import selectors
import shutil
import subprocess
import threading
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import BinaryIO

from pipeline.errors import PipelineError
from pipeline.fsutil import file_sha256
from pipeline.results.bench import GLUED_PRINTK
from pipeline.run.console import (
    EXCERPT_AFTER,
    EXIT_MARKER,
    START_MARKER,
    Finding,
    _Watch,
    extract_ktap,
    scan_console,
)
from pipeline.run.initramfs import (
    COMMAND_PATH,
    INIT_TEMPLATE,
    MODULES_DIR,
    build_initramfs,
    init_template,
    initramfs_entries,
    is_static_elf,
    render_init,
)
from pipeline.run.kvm import KVM_CPU, MACHINE, QEMU, mark_kvm_broken, select_accel, stop_process
from pipeline.run.pvh import pvh_kernel

# The parts live in console (protocol, findings), initramfs and pvh; re-exported here so
# that `pipeline.run.vm` stays the one entry point.
__all__ = [
    "COMMAND_PATH", "EXCERPT_AFTER", "EXIT_MARKER", "INIT_TEMPLATE", "MODULES_DIR",
    "START_MARKER", "Finding", "VmResult", "VmSpec", "build_initramfs", "extract_ktap",
    "init_template", "initramfs_entries", "is_static_elf", "kernel_cmdline", "pvh_kernel",
    "qemu_command", "render_init", "run_vm", "runtime_identity", "scan_console",
]

KVM_BOOT_TIMEOUT = 20.0  # s; a KVM boot that has not reached the init by then is broken
# panic=-1 + QEMU -no-reboot: a panic ends QEMU at once. Oopses stay non-fatal (no
# oops=panic) so the init goes on and reports them. `quiet` only affects the boot (the init
# raises the loglevel); nokaslr keeps oops addresses stable (PVH boots never randomise).
# norandmaps: no userspace ASLR, so every exec of a binary maps its code at the same
# addresses and TCG reuses its translated blocks; a static-pie binary (vexctl) exec'd ~160
# times then costs ~8 ms instead of ~25-60 ms each (measured: test phase 5.6 s -> 1.5 s).
# cryptomgr.notests: no self-tests of the crypto algorithms at boot (Debian 6.1 under TCG:
# ~0.4 s of the ~1.6 s kernel init; boot 2.16 -> 1.66 s, bench/README.md "VM boot"). The
# initcall_blacklist skips two start-up self-tests that option does not cover: the KDF
# (SP800-108) known-answer test, and the jitter entropy source's power-up health test
# (6.12: 0.12 s), whose RNG is then not registered (the DRBG seeds without it outside FIPS
# mode). A name a kernel does not have is ignored.
BASE_APPEND = ("console=ttyS0 panic=-1 quiet nokaslr norandmaps cryptomgr.notests "
               "initcall_blacklist=crypto_kdf108_init,jent_mod_init rdinit=/init")
HOST_BUSYBOX = Path("/bin/busybox")


@dataclass(frozen=True)
class Machine:
    """How QEMU boots a kernel of one Debian architecture."""

    qemu: str
    machine: str
    tcg_cpu: str
    console: str
    kvm_cpu: str | None = None  # None: TCG only (not the host's architecture)
    append: str = ""  # the architecture's own kernel options (after BASE_APPEND)


MACHINES = {
    # qemu64 under TCG, not max: no XSAVE/AVX2/SMAP/PKU state to emulate on every switch,
    # boot + tests 0.2-0.3 s less on Debian 5.10, 6.1 and 6.12 (7.3: within noise). tsc=reliable:
    # under TCG the guest's TSC is the host's; on a busy host the clocksource watchdog
    # otherwise judges it skewed and moves the guest to the HPET, slow to emulate.
    "amd64": Machine(QEMU, MACHINE, "qemu64", "ttyS0", KVM_CPU, append="tsc=reliable"),
    # pauth-impdef: QEMU's own pointer-authentication hash instead of the architected
    # QARMA5, which is slow to emulate (Debian 6.12 to its init: 10.1 s -> 4.4 s under TCG)
    "arm64": Machine("qemu-system-aarch64", "virt", "max,pauth-impdef=on", "ttyAMA0"),
}
POWEROFF_GRACE = 3.0  # s QEMU may take to exit by itself after the exit marker
PANIC_GRACE = 2.0  # s to keep reading the panic trace before killing QEMU
TAIL_LINES = 30


@dataclass
class VmSpec:
    """What to boot and what to run inside."""

    kernel: Path
    modules: list[Path] = field(default_factory=list)
    binaries: list[Path] = field(default_factory=list)
    files: dict[str, Path] = field(default_factory=dict)
    command: str = "true"
    memory_mb: int = 512
    boot_timeout: float = 60
    timeout: float = 300
    test_timeout: float | None = None
    append: str = ""
    label: str = ""  # QEMU -name (e.g. kmatrix:<run id>:<job id>); no commas
    arch: str = "amd64"  # the kernel's Debian architecture: a key of MACHINES
    busybox: Path | None = None  # a static busybox of `arch` (default: the host's)

    @property
    def machine(self) -> Machine:
        """QEMU's binary, machine, CPU and console for the kernel's architecture."""
        return MACHINES[self.arch]


@dataclass
class VmResult:
    """Outcome of one VM run (see the module doc for the statuses)."""

    status: str
    exit_code: int | None
    console: str
    ktap: str
    boot_seconds: float
    test_seconds: float
    reason: str
    accel: str



# --------------------------------------------------------------------------- QEMU


def kernel_cmdline(spec: VmSpec) -> str:
    """The kernel command line: fixed base options (the machine's console), the
    architecture's own, then `spec.append`."""
    base = BASE_APPEND.replace("console=ttyS0", f"console={spec.machine.console}")
    return " ".join(part for part in (base, spec.machine.append, spec.append) if part)


def qemu_command(spec: VmSpec, initramfs: Path, accel: str) -> list[str]:
    """QEMU argv; the serial console is QEMU's stdout."""
    machine = spec.machine
    if accel not in ("kvm", "tcg") or (accel == "kvm" and machine.kvm_cpu is None):
        raise ValueError(f"accel must be 'kvm' or 'tcg' ({spec.arch}: tcg), not {accel!r}")
    return [
        machine.qemu, "-accel", accel, "-machine", machine.machine,
        "-cpu", machine.kvm_cpu if accel == "kvm" else machine.tcg_cpu,
        "-smp", "1", "-m", str(spec.memory_mb),
        "-nodefaults", "-no-user-config", "-no-reboot",
        "-display", "none", "-monitor", "none", "-serial", "stdio",
        "-kernel", str(spec.kernel), "-initrd", str(initramfs),
        "-append", kernel_cmdline(spec),
        *(["-name", spec.label.replace(",", "_")] if spec.label else []),
    ]  # fmt: skip


def _verdict(spec: VmSpec, w: _Watch, now: float) -> tuple[str, str] | None:
    """(status, reason) once the run must stop, else None."""
    if w.panic is not None:
        return ("panic", f"kernel panic: {w.panic}") if now - w.panic_t >= PANIC_GRACE else None
    if w.exit_t is not None:
        return ("ok", "") if now - w.exit_t >= POWEROFF_GRACE else None
    idle = f"no output for {now - (w.last_output_t or w.t0):.0f} s"
    if now - w.t0 >= spec.timeout:
        return "timeout", f"timed out after {spec.timeout:g} s ({idle})"
    if w.start_t is None and now - w.t0 >= spec.boot_timeout:
        return "boot-timeout", f"init did not start within {spec.boot_timeout:g} s ({idle})"
    if spec.test_timeout and w.progress_t is not None and now - w.progress_t >= spec.test_timeout:
        last = f"last result: {w.last_result!r}" if w.last_result else "no result yet"
        return "timeout", f"test hang: no KTAP result for {spec.test_timeout:g} s ({last}; {idle})"
    return None


def _next_wakeup(spec: VmSpec, w: _Watch) -> float:
    """Earliest monotonic time at which `_verdict` may change without new output."""
    times = [w.t0 + spec.timeout]
    if w.start_t is None:
        times.append(w.t0 + spec.boot_timeout)
    if spec.test_timeout and w.progress_t is not None:
        times.append(w.progress_t + spec.test_timeout)
    if w.exit_t is not None:
        times.append(w.exit_t + POWEROFF_GRACE)
    if w.panic_t is not None:
        times.append(w.panic_t + PANIC_GRACE)
    return min(times)


CANCEL_POLL = 0.25  # s between checks of the cancel event
# A printk reaches the serial console directly while the init's output waits in the tty
# buffer, so a kernel message can land between a marker and its own line end ("KMATRIX-
# START[    2.144290] tsc: Refined TSC ...", then an empty line): seen once the boot got
# faster than the TSC's refined calibration (~1 s after the clocksource initcall).
_MARKER_LINE = re.compile(re.escape(START_MARKER) + "|" + re.escape(EXIT_MARKER) + r"-?\d+")


def _unglue(text: str) -> list[str]:
    """A marker and a kernel message glued after it, as the two lines they are."""
    m = GLUED_PRINTK.search(text)
    if m and m.start() > 0 and _MARKER_LINE.fullmatch(text[: m.start()].strip()):
        return [text[: m.start()], text[m.start():]]
    return [text]


def _feed(w: _Watch, now: float, raw: bytes) -> None:
    for line in _unglue(raw.decode("utf-8", "replace").rstrip("\r")):
        w.feed(now, line)


def _pump(proc: subprocess.Popen, spec: VmSpec, w: _Watch, log: BinaryIO,
          cancel: threading.Event | None = None) -> tuple[str, str]:
    """Read the console until a verdict, EOF or `cancel`; returns (status, reason)."""
    fd = proc.stdout.fileno()
    os.set_blocking(fd, False)
    pending = b""
    with selectors.DefaultSelector() as sel:
        sel.register(fd, selectors.EVENT_READ)
        while True:
            now = time.monotonic()
            if cancel is not None and cancel.is_set():
                return "interrupted", "the run was interrupted; QEMU stopped"
            if verdict := _verdict(spec, w, now):
                return verdict
            wait = max(0.0, _next_wakeup(spec, w) - now)
            if not sel.select(min(wait, CANCEL_POLL) if cancel is not None else wait):
                continue
            chunk = os.read(fd, 65536)
            now = time.monotonic()
            log.write(chunk)
            *complete, pending = (pending + chunk).split(b"\n")
            for raw in complete:
                _feed(w, now, raw)
            if not chunk:
                if pending:
                    _feed(w, now, pending)
                return _eof_verdict(w, proc)


def _eof_verdict(w: _Watch, proc: subprocess.Popen) -> tuple[str, str]:
    if w.panic is not None:
        return "panic", f"kernel panic: {w.panic}"
    if w.exit_code is not None:
        return "ok", ""
    stop_process(proc, grace=0.5)
    return "error", f"QEMU exited with status {proc.returncode} before the exit marker"


def _tail(lines: list[str], n: int = TAIL_LINES) -> str:
    return "\n".join(lines[-n:])


def run_vm(
    spec: VmSpec,
    workdir: Path,
    *,
    accel: str | None = None,
    kernel_cache: Path | None = None,
    cancel: threading.Event | None = None,
) -> VmResult:
    """Build the initramfs, boot, watch the console; QEMU is always stopped and reaped.

    A bzImage is booted through its PVH vmlinux (see pvh_kernel), kept in `kernel_cache`
    (default `workdir/kernel-cache`; pass a shared directory to decompress once per kernel).

    With `accel` None the accelerator is chosen by kvm.select_accel(); if a KVM boot then
    fails before the init starts (within KVM_BOOT_TIMEOUT), KVM is marked broken for this
    process and the run is repeated under TCG. Setting `cancel` stops QEMU within
    CANCEL_POLL s (status "interrupted").
    """
    native = spec.machine.kvm_cpu is not None  # KVM (and PVH) only for the host's arch
    auto = accel is None and native
    accel = accel or (select_accel() if native else "tcg")
    initramfs = build_initramfs(spec, workdir, spec.busybox or HOST_BUSYBOX)
    if native:
        spec = replace(spec, kernel=pvh_kernel(spec.kernel,
                                               kernel_cache or workdir / "kernel-cache"))
    qemu = spec.machine.qemu
    if shutil.which(qemu) is None:
        hint = " (apt-get install qemu-system-arm; `make setup`)" if spec.arch == "arm64" else ""
        return VmResult("error", None, "", "", 0.0, 0.0, f"{qemu} not found{hint}", accel)
    boot_timeout = min(spec.boot_timeout, KVM_BOOT_TIMEOUT) if auto and accel == "kvm" else None
    if cancel is not None and cancel.is_set():
        return VmResult("interrupted", None, "", "", 0.0, 0.0,
                        "the run was interrupted before the boot", accel)
    result = _boot(spec, workdir, initramfs, accel, boot_timeout, cancel)
    if auto and accel == "kvm" and result.status in ("boot-timeout", "error"):
        mark_kvm_broken(result.reason)
        result = _boot(spec, workdir, initramfs, "tcg", None, cancel)
    return result


def _boot(
    spec: VmSpec, workdir: Path, initramfs: Path, accel: str, boot_timeout: float | None,
    cancel: threading.Event | None = None,
) -> VmResult:
    if boot_timeout is not None:
        spec = replace(spec, boot_timeout=boot_timeout)
    w = _Watch(t0=time.monotonic())
    with open(workdir / "console.log", "wb") as log:
        proc = subprocess.Popen(
            qemu_command(spec, initramfs, accel),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            cwd=workdir,
        )
        try:
            status, reason = _pump(proc, spec, w, log, cancel)
            stopped = time.monotonic()
        finally:
            stop_process(proc)
            proc.stdout.close()
    return _result(status, reason, w, accel, stopped)


def _result(status: str, reason: str, w: _Watch, accel: str, stopped: float) -> VmResult:
    lines = [line for _, line in w.lines]
    end = w.exit_t or stopped
    boot = (w.start_t or end) - w.t0
    test = end - w.start_t if w.start_t is not None else 0.0
    if status != "ok":
        reason = f"{reason}\n--- last {TAIL_LINES} console lines ---\n{_tail(lines)}"
    return VmResult(
        status=status,
        exit_code=w.exit_code if status == "ok" else None,
        console="\n".join(lines) + ("\n" if lines else ""),
        ktap=extract_ktap(lines),
        boot_seconds=round(boot, 3),
        test_seconds=round(max(test, 0.0), 3),
        reason=reason,
        accel=accel,
    )


def _run_version(cmd: list[str]) -> str:
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return "missing"
    return (proc.stdout.strip().splitlines() or ["unknown"])[0]


def runtime_identity() -> dict[str, str]:
    """What a VM job runs on besides its kernel: QEMU, busybox, the init template and the
    fixed kernel command line."""
    def digest(path: Path) -> str:
        try:
            return file_sha256(path)
        except OSError:
            return "missing"

    try:
        init = digest(init_template())
    except PipelineError:
        init = "missing"
    identity = {"qemu": _run_version([QEMU, "--version"]), "machine": MACHINE,
                "busybox": digest(HOST_BUSYBOX), "init": init, "append": BASE_APPEND}
    for arch, machine in MACHINES.items():  # the busybox of another arch is in the lock
        if machine.kvm_cpu is None:
            identity[f"qemu-{arch}"] = _run_version([machine.qemu, "--version"])
            identity[f"machine-{arch}"] = f"{machine.machine} -cpu {machine.tcg_cpu} " \
                                          f"console={machine.console}"
        else:
            identity[f"machine-{arch}"] = (f"{machine.machine} -cpu {machine.tcg_cpu}"
                                           f"/{machine.kvm_cpu} {machine.append}")
    return identity
