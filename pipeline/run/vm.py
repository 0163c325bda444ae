"""Boot a kernel in QEMU with a busybox initramfs, run one command, report what happened.

Host side only; every path is an argument and nothing is written outside `workdir` (it gets
initramfs.cpio.gz, console.log and, unless run_vm is given a shared `kernel_cache`,
kernel-cache/ with the ~65 MB decompressed PVH vmlinux).

Console protocol (serial ttyS0, read live from QEMU's stdout):
  * the init prints START_MARKER once the pseudo filesystems are mounted,
  * runs `spec.command` with its output on the console,
  * prints ``KMATRIX-EXIT: <code>`` and powers off (``-no-reboot`` makes QEMU exit).
The boot itself runs with ``quiet``; the init then raises the console loglevel so that every
kernel message of the test phase (module load, oops, WARNING, ...) is on the console live,
interleaved with the command's output. Nothing is dumped from dmesg afterwards. QEMU's own
stderr is merged into the console text.

Statuses: "ok" means the command ran to completion and its exit code was reported (a
nonzero code is still "ok": judging it is the caller's business); "panic" wins over
everything; "boot-timeout", "timeout" (whole run or per-test hang), "interrupted" (the
caller's `cancel` event was set: Ctrl-C / SIGTERM of the run) and "error" (QEMU could not
start or stopped without an exit marker) have `exit_code` None.

A VmSpec `label` is passed as QEMU's `-name`, so a run's QEMU processes can be recognised
(e.g. by tests looking for leftovers) without matching process names.
"""

from __future__ import annotations

import gzip
import lzma
import os
import re
import selectors
import shutil
import stat
import struct
import subprocess
import threading
import time
import zlib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import BinaryIO

import jinja2

from pipeline.errors import EnvironmentProblem, InputError, PipelineError
from pipeline.fsutil import file_sha256
from pipeline.run.kvm import KVM_CPU, MACHINE, QEMU, mark_kvm_broken, select_accel, stop_process

START_MARKER = "KMATRIX-START"
EXIT_MARKER = "KMATRIX-EXIT: "
MODULES_DIR = "lib/modules-test"
COMMAND_PATH = "kmatrix/command.sh"
# The /init template is package data (pyproject: package-data "templates/*"), so a
# non-editable install has it next to this module; a checkout that predates the move has it
# under images/vm/ (fallback only, see init_template()). pipeline.plan.keys hashes it.
INIT_TEMPLATE = Path(__file__).resolve().parent / "templates" / "vm-init.j2"
LEGACY_INIT_TEMPLATE = Path(__file__).resolve().parents[2] / "images" / "vm" / "init.j2"
CONSOLE_LOGLEVEL = 8
KVM_BOOT_TIMEOUT = 20.0  # s; a KVM boot that has not reached the init by then is broken
# panic=-1 + QEMU -no-reboot: a panic ends QEMU at once. Oopses stay non-fatal (no
# oops=panic) so the init goes on and reports them. `quiet` only affects the boot (the init
# raises the loglevel); nokaslr keeps oops addresses stable (PVH boots never randomise).
# norandmaps: no userspace ASLR, so every exec of a binary maps its code at the same
# addresses and TCG reuses its translated blocks; a static-pie binary (vexctl) exec'd ~160
# times then costs ~8 ms instead of ~25-60 ms each (measured: test phase 5.6 s -> 1.5 s).
BASE_APPEND = "console=ttyS0 panic=-1 quiet nokaslr norandmaps rdinit=/init"
POWEROFF_GRACE = 3.0  # s QEMU may take to exit by itself after the exit marker
PANIC_GRACE = 2.0  # s to keep reading the panic trace before killing QEMU
TAIL_LINES = 30

_TIMESTAMP = re.compile(r"^\[\s*\d+\.\d+\] ?")
_EXIT_RE = re.compile(re.escape(EXIT_MARKER) + r"(-?\d+)\s*$")
_PANIC_RE = re.compile(r"Kernel panic - not syncing.*")
_KTAP_LINE = re.compile(r"^\s*(KTAP version \d+|TAP version \d+|\d+\.\.\d+|(not )?ok \d+|#(\s|$))")
_KTAP_RESULT = re.compile(r"^\s*(not )?ok \d+")


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


@dataclass(frozen=True)
class Finding:
    """A suspicious kernel message found in the console text."""

    kind: str
    line_no: int  # 1-based line number in the console text
    excerpt: str


# --------------------------------------------------------------------------- initramfs


class _Cpio:
    """Minimal deterministic newc writer: fixed mtime/uid/gid, inode numbers in order."""

    def __init__(self) -> None:
        self.parts: list[bytes] = []
        self.ino = 0

    def add(self, name: str, mode: int, data: bytes = b"", rdev: tuple[int, int] = (0, 0)) -> None:
        self.ino += 1
        nlink = 2 if stat.S_ISDIR(mode) else 1
        fields = (self.ino, mode, 0, 0, nlink, 0, len(data), 0, 0, *rdev, len(name) + 1, 0)
        header = "070701" + "".join(f"{v:08x}" for v in fields)
        self.parts.append(_pad(header.encode() + name.encode() + b"\0"))
        self.parts.append(_pad(data))

    def finish(self) -> bytes:
        self.add("TRAILER!!!", 0)
        return b"".join(self.parts)


def _pad(data: bytes) -> bytes:
    return data + b"\0" * (-len(data) % 4)


def is_static_elf(path: Path) -> bool:
    """True for an ELF executable without a PT_INTERP (dynamic loader) program header."""
    data = path.read_bytes()
    if data[:4] != b"\x7fELF" or data[4] != 2:  # 64-bit only
        return False
    phoff = int.from_bytes(data[0x20:0x28], "little")
    phentsize = int.from_bytes(data[0x36:0x38], "little")
    phnum = int.from_bytes(data[0x38:0x3A], "little")
    for i in range(phnum):
        p_type = int.from_bytes(data[phoff + i * phentsize : phoff + i * phentsize + 4], "little")
        if p_type == 3:  # PT_INTERP
            return False
    return True


def init_template() -> Path:
    """The /init template: the packaged one, else the legacy images/vm/init.j2."""
    for path in (INIT_TEMPLATE, LEGACY_INIT_TEMPLATE):
        if path.is_file():
            return path
    raise EnvironmentProblem(
        f"the VM init template {INIT_TEMPLATE} is missing",
        hint="reinstall kmatrix (`pip install .`): the template is package data",
    )


def render_init(template: Path | None = None) -> str:
    """The /init script text (`template`: default init_template())."""
    template = template or init_template()
    env = jinja2.Environment(undefined=jinja2.StrictUndefined, keep_trailing_newline=True)
    return env.from_string(template.read_text(encoding="utf-8")).render(
        start_marker=START_MARKER,
        exit_marker=EXIT_MARKER,
        command_path="/" + COMMAND_PATH,
        modules_dir="/" + MODULES_DIR,
        console_loglevel=CONSOLE_LOGLEVEL,
    )


def _busybox_applets(busybox: Path) -> list[str]:
    out = subprocess.run(
        [str(busybox), "--list-full"], capture_output=True, text=True, check=True, timeout=30
    ).stdout
    return sorted({line.strip().lstrip("/") for line in out.splitlines() if line.strip()})


def initramfs_entries(
    spec: VmSpec, busybox: Path, init_template: Path | None = None
) -> dict[str, tuple[int, bytes]]:
    """Every file and symlink of the initramfs: path -> (mode, content or link target)."""
    if not busybox.is_file() or not is_static_elf(busybox):
        raise EnvironmentProblem(
            f"{busybox} is not a static busybox", hint="apt-get install busybox-static"
        )
    entries: dict[str, tuple[int, bytes]] = {"bin/busybox": (0o100755, busybox.read_bytes())}
    for applet in _busybox_applets(busybox):
        entries.setdefault(applet, (0o120777, b"/bin/busybox"))
    entries["init"] = (0o100755, render_init(init_template).encode())
    entries[COMMAND_PATH] = (0o100644, spec.command.encode() + b"\n")
    for ko in spec.modules:
        entries[f"{MODULES_DIR}/{ko.name}"] = (0o100644, _read_input(ko))
    for exe in spec.binaries:
        if _read_input(exe)[:4] == b"\x7fELF" and not is_static_elf(exe):
            raise InputError(f"{exe} is dynamically linked; the VM has no libraries")
        entries[f"usr/bin/{exe.name}"] = (0o100755, exe.read_bytes())
    for dest, src in spec.files.items():
        entries.update(_file_entries(dest.strip("/"), src))
    return entries


def _read_input(path: Path) -> bytes:
    if not path.is_file():
        raise InputError(f"VM input file not found: {path}")
    return path.read_bytes()


def _file_entries(dest: str, src: Path) -> dict[str, tuple[int, bytes]]:
    if src.is_dir():
        found: dict[str, tuple[int, bytes]] = {}
        for child in sorted(src.rglob("*")):
            if child.is_file():
                found.update(_file_entries(f"{dest}/{child.relative_to(src).as_posix()}", child))
        return found
    mode = 0o100755 if os.access(_existing(src), os.X_OK) else 0o100644
    return {dest: (mode, src.read_bytes())}


def _existing(path: Path) -> Path:
    if not path.exists():
        raise InputError(f"VM input file not found: {path}")
    return path


def _parent_dirs(paths: list[str]) -> list[str]:
    base = {"dev", "proc", "sys", "tmp", "run", "root", "etc", "sys/kernel", MODULES_DIR}
    for path in paths:
        parts = path.split("/")[:-1]
        base.update("/".join(parts[: i + 1]) for i in range(len(parts)))
    return sorted(base)


def build_initramfs(
    spec: VmSpec,
    workdir: Path,
    busybox: Path = Path("/bin/busybox"),
    *,
    init_template: Path | None = None,
) -> Path:
    """Write `workdir/initramfs.cpio.gz` (newc, gzip); same inputs give the same bytes."""
    entries = initramfs_entries(spec, busybox, init_template)
    archive = _Cpio()
    for directory in _parent_dirs(list(entries)):
        archive.add(directory, 0o040755)
    archive.add("dev/console", 0o020600, rdev=(5, 1))
    for name in sorted(entries):
        mode, data = entries[name]
        archive.add(name, mode, data)
    workdir.mkdir(parents=True, exist_ok=True)
    out = workdir / "initramfs.cpio.gz"
    out.write_bytes(gzip.compress(archive.finish(), compresslevel=6, mtime=0))
    return out


# --------------------------------------------------------------------------- kernel

XEN_ELFNOTE_PHYS32_ENTRY = 18
_XZ_MAGIC, _GZ_MAGIC = b"\xfd7zXZ\x00", b"\x1f\x8b"


def pvh_kernel(kernel: Path, cache_dir: Path) -> Path:
    """An ELF vmlinux with a PVH entry for `kernel`, else `kernel` itself.

    QEMU boots a PVH vmlinux directly, skipping the bzImage decompressor, which takes
    ~2.4 s under TCG (Debian 6.1). The payload (xz or gzip) is decompressed on the host
    once and kept in `cache_dir` under a name derived from the kernel's name, size and mtime.
    """
    st = kernel.stat()
    cached = cache_dir / f"{kernel.name}-{st.st_size}-{st.st_mtime_ns}.pvh"
    if cached.is_file():
        return cached
    image = kernel.read_bytes()
    if image[:4] == b"\x7fELF":
        return kernel
    elf = _bzimage_payload(image)
    if elf is None or not _has_pvh_note(elf):
        return kernel
    cache_dir.mkdir(parents=True, exist_ok=True)
    tmp = cached.with_suffix(f".tmp{os.getpid()}")
    tmp.write_bytes(elf)
    os.replace(tmp, cached)
    return cached


def _bzimage_payload(image: bytes) -> bytes | None:
    """The decompressed vmlinux of a bzImage (boot protocol >= 2.08), None if unsupported."""
    if len(image) < 0x250 or image[0x202:0x206] != b"HdrS":
        return None
    setup_sects = image[0x1F1] or 4
    offset = (setup_sects + 1) * 512 + int.from_bytes(image[0x248:0x24C], "little")
    payload = image[offset : offset + int.from_bytes(image[0x24C:0x250], "little")]
    try:
        if payload.startswith(_XZ_MAGIC):
            return lzma.LZMADecompressor(format=lzma.FORMAT_XZ).decompress(payload)
        if payload.startswith(_GZ_MAGIC):
            return zlib.decompressobj(wbits=31).decompress(payload)
    except (lzma.LZMAError, zlib.error):
        return None
    return None  # zstd, lz4, ...: boot the bzImage as it is


def _has_pvh_note(elf: bytes) -> bool:
    """Whether a 64-bit ELF has the Xen PVH entry note that QEMU's -kernel needs."""
    if elf[:5] != b"\x7fELF\x02":
        return False
    phoff = int.from_bytes(elf[0x20:0x28], "little")
    phentsize, phnum = struct.unpack_from("<HH", elf, 0x36)
    for i in range(phnum):
        p_type, _, p_offset, _, _, p_filesz = struct.unpack_from(
            "<IIQQQQ", elf, phoff + i * phentsize
        )
        if p_type == 4 and _notes_have_pvh(elf[p_offset : p_offset + p_filesz]):
            return True
    return False


def _notes_have_pvh(notes: bytes) -> bool:
    pos = 0
    while pos + 12 <= len(notes):
        namesz, descsz, ntype = struct.unpack_from("<III", notes, pos)
        name = notes[pos + 12 : pos + 12 + namesz].rstrip(b"\0")
        if name == b"Xen" and ntype == XEN_ELFNOTE_PHYS32_ENTRY:
            return True
        pos += 12 + (namesz + 3) // 4 * 4 + (descsz + 3) // 4 * 4
    return False


# --------------------------------------------------------------------------- QEMU


def kernel_cmdline(spec: VmSpec) -> str:
    """The kernel command line: fixed base options, then `spec.append`."""
    return f"{BASE_APPEND} {spec.append}".strip()


def qemu_command(spec: VmSpec, initramfs: Path, accel: str) -> list[str]:
    """QEMU argv; the serial console is QEMU's stdout."""
    if accel not in ("kvm", "tcg"):
        raise ValueError(f"accel must be 'kvm' or 'tcg', not {accel!r}")
    return [
        QEMU, "-accel", accel, "-machine", MACHINE,
        "-cpu", KVM_CPU if accel == "kvm" else "max",
        "-smp", "1", "-m", str(spec.memory_mb),
        "-nodefaults", "-no-user-config", "-no-reboot",
        "-display", "none", "-monitor", "none", "-serial", "stdio",
        "-kernel", str(spec.kernel), "-initrd", str(initramfs),
        "-append", kernel_cmdline(spec),
        *(["-name", spec.label.replace(",", "_")] if spec.label else []),
    ]  # fmt: skip


@dataclass
class _Watch:
    """Live state of one run, fed line by line."""

    t0: float
    lines: list[tuple[float, str]] = field(default_factory=list)
    start_t: float | None = None
    exit_t: float | None = None
    exit_code: int | None = None
    panic: str | None = None
    panic_t: float | None = None
    progress_t: float | None = None
    last_output_t: float = 0.0
    last_result: str = ""

    def feed(self, now: float, line: str) -> None:
        self.lines.append((now, line))
        self.last_output_t = now
        text = _TIMESTAMP.sub("", line)
        if self.start_t is None and text.strip().endswith(START_MARKER):
            self.start_t = self.progress_t = now
        elif self.start_t is not None and self.exit_t is None and (m := _EXIT_RE.search(text)):
            self.exit_t, self.exit_code = now, int(m.group(1))
        if self.panic is None and (m := _PANIC_RE.search(text)):
            self.panic, self.panic_t = m.group(0).strip(), now
        if _KTAP_RESULT.match(text):
            self.progress_t, self.last_result = now, text.strip()


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
                w.feed(now, raw.decode("utf-8", "replace").rstrip("\r"))
            if not chunk:
                if pending:
                    w.feed(now, pending.decode("utf-8", "replace").rstrip("\r"))
                return _eof_verdict(w, proc)


def _eof_verdict(w: _Watch, proc: subprocess.Popen) -> tuple[str, str]:
    if w.panic is not None:
        return "panic", f"kernel panic: {w.panic}"
    if w.exit_code is not None:
        return "ok", ""
    stop_process(proc, grace=0.5)
    return "error", f"QEMU exited with status {proc.returncode} before the exit marker"


def extract_ktap(lines: list[str]) -> str:
    """KTAP text between the markers, printk timestamps stripped.

    The command's own output (lines without a printk timestamp) is kept whole; kernel
    messages are kept only when they look like KTAP (in-kernel KUnit output), so module
    load chatter and splats stay out of the KTAP (they remain in the console).
    """
    out: list[str] = []
    started = False
    for line in lines:
        text = _TIMESTAMP.sub("", line)
        if not started:
            started = text.strip().endswith(START_MARKER)
            continue
        if _EXIT_RE.search(text):
            break
        if text == line or _KTAP_LINE.match(text):
            out.append(text)
    return "\n".join(out) + ("\n" if out else "")


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
    auto = accel is None
    accel = accel or select_accel()
    initramfs = build_initramfs(spec, workdir)
    spec = replace(spec, kernel=pvh_kernel(spec.kernel, kernel_cache or workdir / "kernel-cache"))
    if shutil.which(QEMU) is None:
        return VmResult("error", None, "", "", 0.0, 0.0, f"{QEMU} not found", accel)
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


# --------------------------------------------------------------------------- findings

# First matching pattern wins for a line. Taint: loading an out-of-tree (O) or unsigned
# (E) module and running KUnit tests (N) taint the kernel by design, so their messages
# ("loading out-of-tree module taints kernel", "module verification failed ... tainting
# kernel") are not findings; a "Tainted:" header with any other flag, or lock debugging
# being disabled by a taint, is.
_FINDING_PATTERNS: list[tuple[str, re.Pattern[str]]] = [
    ("kasan", re.compile(r"\bKASAN: ")),
    ("ubsan", re.compile(r"\bUBSAN: ")),
    ("kfence", re.compile(r"\bKFENCE: ")),
    ("kmemleak", re.compile(r"kmemleak: .*suspected memory leak|unreferenced object 0x")),
    ("refcount", re.compile(r"\brefcount_t: ")),
    ("gpf", re.compile(r"general protection fault")),
    ("panic", re.compile(r"Kernel panic - not syncing")),
    ("oops", re.compile(r"\bOops\b")),
    ("warning", re.compile(r"\bWARNING: ")),
    ("bug", re.compile(r"\bBUG: ")),
    ("hung-task", re.compile(r"INFO: task .* blocked for more than")),
    ("rcu-stall", re.compile(r"rcu: INFO: .* detected stalls")),
    ("taint", re.compile(r"[Dd]isabling lock debugging due to kernel taint")),
]
_TAINTED = re.compile(r"\bTainted: ([A-Z ]+?)(?:\s+\d|\s*$)")
_BENIGN_TAINTS = set("GOEN ")
# Lines the test command printed as KTAP (results, "# diagnostics"): a test that quotes
# dmesg in its diagnostics must not make the same splat a second finding. Kernel lines
# carry a printk timestamp, so they never match.
_COMMAND_KTAP = re.compile(r"^\s*(?:#|(?:not )?ok \d+)")
# Kinds that are the header of a report already found just above (same excerpt): a
# "BUG: kernel NULL pointer dereference" is followed by its "Oops: 0002 [#1]" line.
_FOLLOW_UPS = {"taint": None, "oops": {"bug", "gpf", "kasan", "kfence"}}
# The excerpt starts at the finding's own line (it becomes the failure message) and
# takes enough of what follows for the register dump and most of the call trace.
EXCERPT_BEFORE, EXCERPT_AFTER = 0, 40


def _classify(text: str) -> str | None:
    for kind, pattern in _FINDING_PATTERNS:
        if pattern.search(text):
            return kind
    m = _TAINTED.search(text)
    if m and set(m.group(1)) - _BENIGN_TAINTS:
        return "taint"
    return None


def scan_console(console: str) -> list[Finding]:
    """Kernel splats (BUG, WARNING, Oops, KASAN, panic, unexpected taint, ...) with excerpts.

    Each excerpt starts at the finding's line. A finding inside the excerpt of an earlier
    one is dropped when it is a header of that same report: any "taint" (the Tainted:
    line), an "oops" after a bug/gpf/kasan/kfence. The command's own KTAP lines are not
    scanned.
    """
    lines = console.splitlines()
    findings: list[Finding] = []
    covered_until, covering = -1, ""
    for i, line in enumerate(lines):
        if _COMMAND_KTAP.match(line):
            continue
        kind = _classify(line)
        if kind is None:
            continue
        if i <= covered_until and kind in _FOLLOW_UPS:
            parents = _FOLLOW_UPS[kind]
            if parents is None or covering in parents:
                continue
        excerpt = "\n".join(lines[max(0, i - EXCERPT_BEFORE) : i + EXCERPT_AFTER])
        findings.append(Finding(kind, i + 1, excerpt))
        covered_until, covering = i + EXCERPT_AFTER - 1, kind
    return findings


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
    return {"qemu": _run_version([QEMU, "--version"]), "machine": MACHINE,
            "busybox": digest(Path("/bin/busybox")), "init": init, "append": BASE_APPEND}
