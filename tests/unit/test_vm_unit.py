"""Unit tests for the pure parts of pipeline.run.vm and pipeline.run.kvm (no QEMU boot)."""

from __future__ import annotations

import gzip
import lzma
import os
import re
import shutil
import struct
import subprocess
import tomllib
from pathlib import Path

import pytest

from pipeline.errors import EnvironmentProblem, InputError
from pipeline.run import initramfs, kvm, vm

ROOT = Path(__file__).resolve().parents[2]

BUSYBOX = Path("/bin/busybox")
needs_busybox = pytest.mark.skipif(
    not (BUSYBOX.is_file() and vm.is_static_elf(BUSYBOX)),
    reason="static /bin/busybox missing (apt-get install busybox-static)",
)


def _spec(tmp_path: Path, **kw) -> vm.VmSpec:
    ko = tmp_path / "m.ko"
    ko.write_bytes(b"not really a module")
    script = tmp_path / "run.sh"
    script.write_text("echo hi\n")
    script.chmod(0o755)
    base = dict(
        kernel=tmp_path / "vmlinuz",
        modules=[ko],
        binaries=[],
        files={"/tests/run.sh": script},
        command="sh /tests/run.sh",
    )
    return vm.VmSpec(**(base | kw))


def _cpio_names(archive: bytes) -> dict[str, tuple[int, bytes]]:
    """Tiny newc reader: name -> (mode, data)."""
    data = gzip.decompress(archive)
    pos, out = 0, {}
    while True:
        header = data[pos : pos + 110]
        assert header[:6] == b"070701"
        fields = [int(header[6 + 8 * i : 14 + 8 * i], 16) for i in range(13)]
        mode, size, namesize = fields[1], fields[6], fields[11]
        name_end = pos + 110 + namesize - 1
        name = data[pos + 110 : name_end].decode()
        pos = (name_end + 1 + 3) // 4 * 4
        out[name] = (mode, data[pos : pos + size])
        pos = (pos + size + 3) // 4 * 4
        if name == "TRAILER!!!":
            return out


# ----------------------------------------------------------------- qemu command line


def test_qemu_command_tcg(tmp_path: Path) -> None:
    spec = _spec(tmp_path, memory_mb=256, append="foo=bar")
    cmd = vm.qemu_command(spec, tmp_path / "i.cpio.gz", "tcg")
    assert cmd[0] == "qemu-system-x86_64"
    joined = " ".join(cmd)
    for part in ("-accel tcg", "-cpu qemu64", "-smp 1", "-m 256", "-no-reboot", "-nodefaults"):
        assert part in joined
    assert cmd[cmd.index("-kernel") + 1] == str(spec.kernel)
    assert cmd[cmd.index("-initrd") + 1] == str(tmp_path / "i.cpio.gz")
    assert cmd[cmd.index("-serial") + 1] == "stdio"
    append = cmd[cmd.index("-append") + 1]
    assert "console=ttyS0" in append and "panic=-1" in append
    assert append.endswith("foo=bar")
    assert "oops=panic" not in append


def test_qemu_command_kvm_and_bad_accel(tmp_path: Path) -> None:
    cmd = vm.qemu_command(_spec(tmp_path), tmp_path / "i", "kvm")
    assert cmd[cmd.index("-cpu") + 1] == kvm.KVM_CPU
    assert cmd[cmd.index("-machine") + 1] == kvm.MACHINE
    with pytest.raises(ValueError):
        vm.qemu_command(_spec(tmp_path), tmp_path / "i", "hvf")


def test_kernel_cmdline_disables_user_aslr(tmp_path: Path) -> None:
    # norandmaps lets TCG reuse translated code across the ~150 vexctl execs of run-ktap.sh
    line = vm.kernel_cmdline(_spec(tmp_path, append="x=1"))
    assert line.split()[-1] == "x=1"
    assert {"norandmaps", "nokaslr", "quiet", "panic=-1"} <= set(line.split())
    # measured boot options (bench/README.md "VM boot"); tsc= only where there is a TSC
    assert {"cryptomgr.notests", "tsc=reliable"} <= set(line.split())
    arm = vm.kernel_cmdline(vm.VmSpec(kernel=tmp_path / "Image", arch="arm64"))
    assert "cryptomgr.notests" in arm.split() and "tsc=reliable" not in arm


# ----------------------------------------------------------------- init template


def test_init_template_is_package_data() -> None:
    assert vm.init_template() == vm.INIT_TEMPLATE == ROOT / "pipeline/run/templates/vm-init.j2"
    globs = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"][
        "package-data"
    ]["pipeline"]
    assert "run/templates/*" in globs  # shipped by non-editable installs
    text = vm.render_init()
    assert "{{" not in text and "KMATRIX-START" in text and "poweroff -f" in text


def test_init_template_fallback_and_missing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    legacy = tmp_path / "init.j2"
    legacy.write_text("echo {{ start_marker }}\n")
    monkeypatch.setattr(initramfs, "INIT_TEMPLATE", tmp_path / "no-such.j2")
    monkeypatch.setattr(initramfs, "LEGACY_INIT_TEMPLATE", legacy)
    assert vm.init_template() == legacy
    assert vm.render_init() == "echo KMATRIX-START\n"
    monkeypatch.setattr(initramfs, "LEGACY_INIT_TEMPLATE", tmp_path / "gone.j2")
    with pytest.raises(EnvironmentProblem, match="template"):
        vm.init_template()


# ----------------------------------------------------------------- in-VM test script

RUN_KTAP = ROOT / "kernel" / "tests" / "run-ktap.sh"


@pytest.mark.parametrize("shell", ["dash", "busybox"])
def test_run_ktap_parses_as_posix_sh(shell: str) -> None:
    argv = {"dash": ["dash", "-n"], "busybox": ["busybox", "sh", "-n"]}[shell]
    if not Path(f"/bin/{shell}").exists() and not Path(f"/usr/bin/{shell}").exists():
        pytest.skip(f"{shell} not installed")
    proc = subprocess.run([*argv, str(RUN_KTAP)], capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0, proc.stderr


def test_run_ktap_subtest_plans_match_their_cases() -> None:
    """Each `subtest_begin NAME PLAN` announces as many cases as its block emits."""
    text = RUN_KTAP.read_text()
    blocks = re.findall(r"subtest_begin (\w+) (\d+)\n(.*?)\n\s*subtest_end", text, re.S)
    assert {name for name, _, _ in blocks} == {
        "mount",
        "vectors",
        "search",
        "hybrid_search",
        "index",
        "errors",
    }
    emitters = re.compile(
        r"^\s*(?:check_search|check_errno|check_get|check_index_info|check_mount_fails) \w+"
        r"|\bok (?:\$\w+|\$\?|0) \w+|\bskip \w+",
        re.M,
    )
    for name, plan, body in blocks:
        # an if/else pair that reports the same case counts once
        cases = {m.group(0).split()[-1] for m in emitters.finditer(body)}
        assert len(cases) == int(plan), (name, sorted(cases))


# ----------------------------------------------------------------- initramfs


@needs_busybox
def test_initramfs_deterministic(tmp_path: Path) -> None:
    spec = _spec(tmp_path)
    a = vm.build_initramfs(spec, tmp_path / "a").read_bytes()
    os.utime(spec.modules[0], (1, 1))  # host mtimes must not leak into the archive
    b = vm.build_initramfs(spec, tmp_path / "b").read_bytes()
    assert a == b


@needs_busybox
def test_initramfs_contents(tmp_path: Path) -> None:
    spec = _spec(tmp_path)
    entries = _cpio_names(vm.build_initramfs(spec, tmp_path / "w").read_bytes())
    assert entries["bin/busybox"][1] == BUSYBOX.read_bytes()
    assert entries["bin/sh"] == (0o120777, b"/bin/busybox")
    assert entries["dev/console"][0] == 0o020600
    init_mode, init = entries["init"]
    assert init_mode == 0o100755
    assert b"KMATRIX-START" in init and b"KMATRIX-EXIT: $rc" in init and b"poweroff -f" in init
    assert not re.search(rb"^\s*(insmod|modprobe)", init, re.M)  # the command loads modules
    assert entries["kmatrix/command.sh"][1] == b"sh /tests/run.sh\n"
    assert entries["lib/modules-test/m.ko"] == (0o100644, b"not really a module")
    assert entries["tests/run.sh"] == (0o100755, b"echo hi\n")
    assert entries["tests"][0] == 0o040755
    names = [n for n in entries if n != "TRAILER!!!"]
    dirs = [n for n in names if entries[n][0] & 0o170000 == 0o040000]
    assert dirs == sorted(dirs)


@needs_busybox
def test_initramfs_rejects_dynamic_binary_and_missing_file(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="dynamically linked"):
        vm.build_initramfs(_spec(tmp_path, binaries=[Path("/bin/ls")]), tmp_path / "w")
    with pytest.raises(InputError, match="not found"):
        vm.build_initramfs(_spec(tmp_path, modules=[tmp_path / "nope.ko"]), tmp_path / "w")


def test_is_static_elf() -> None:
    assert not vm.is_static_elf(Path("/bin/ls"))
    if BUSYBOX.is_file():
        assert vm.is_static_elf(BUSYBOX)


def test_pvh_kernel_leaves_unknown_images_alone(tmp_path: Path) -> None:
    junk = tmp_path / "vmlinuz"
    junk.write_bytes(b"\0" * 4096)
    assert vm.pvh_kernel(junk, tmp_path / "cache") == junk
    assert not (tmp_path / "cache").exists()


def _pvh_elf() -> bytes:
    """A minimal ELF64 whose one PT_NOTE holds Xen's PVH entry note (type 18)."""
    note = struct.pack("<III", 4, 4, 18) + b"Xen\0" + struct.pack("<I", 0x1000000)
    phoff, note_off = 64, 64 + 56
    header = bytearray(64)
    header[:6] = b"\x7fELF\x02\x01"
    header[0x20:0x28] = phoff.to_bytes(8, "little")
    header[0x36:0x3A] = struct.pack("<HH", 56, 1)
    phdr = struct.pack("<IIQQQQQQ", 4, 0, note_off, 0, 0, len(note), len(note), 4)
    return bytes(header) + phdr + note


def _bzimage(payload: bytes) -> bytes:
    """A bzImage shell: 4 setup sectors + boot sector, then `payload` at offset 0."""
    image = bytearray(5 * 512)
    image[0x1F1] = 4
    image[0x202:0x206] = b"HdrS"
    image[0x248:0x24C] = (0).to_bytes(4, "little")
    image[0x24C:0x250] = len(payload).to_bytes(4, "little")
    return bytes(image) + payload


@pytest.mark.parametrize("codec", ["xz", "gzip", "zstd"])
def test_pvh_kernel_unpacks_the_payload(tmp_path: Path, codec: str) -> None:
    elf = _pvh_elf()
    if codec == "xz":
        payload = lzma.compress(elf, format=lzma.FORMAT_XZ)
    elif codec == "gzip":
        payload = gzip.compress(elf)
    else:
        if shutil.which("zstd") is None:
            pytest.skip("zstd not installed")
        frame = subprocess.run(["zstd", "-q", "-c"], input=elf, capture_output=True,
                               check=True).stdout
        payload = frame + len(elf).to_bytes(4, "little")  # the kernel build's size_append
    kernel = tmp_path / "vmlinuz"
    kernel.write_bytes(_bzimage(payload))
    pvh = vm.pvh_kernel(kernel, tmp_path / "cache")
    assert pvh != kernel and pvh.read_bytes() == elf
    assert vm.pvh_kernel(kernel, tmp_path / "cache") == pvh  # cached


def test_pvh_kernel_without_the_zstd_tool_boots_the_bzimage(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    payload = b"\x28\xb5\x2f\xfd" + b"\0" * 60
    kernel = tmp_path / "vmlinuz"
    kernel.write_bytes(_bzimage(payload))
    monkeypatch.setattr(shutil, "which", lambda name: None)
    assert vm.pvh_kernel(kernel, tmp_path / "cache") == kernel


# ----------------------------------------------------------------- console parsing

CONSOLE = """\
[    0.000000] Linux version 6.1.0
KMATRIX-START
[    1.100000] crc_itu_t: loading out-of-tree module taints kernel.
[1.1] foo: module verification failed: signature and/or required key missing - tainting kernel
KTAP version 1
1..2
[    1.200000]     KTAP version 1
[    1.200001]     # Subtest: kunit_suite
[    1.200002]     ok 1 kunit_case
[    1.200003] random driver chatter
ok 1 a
[    1.300000] ------------[ cut here ]------------
[    1.300001] WARNING: CPU: 0 PID: 86 at drivers/foo.c:12 foo_init+0x1/0x2 [foo]
[    1.300002] CPU: 0 PID: 86 Comm: insmod Tainted: G        W  OE      6.1.0-56-amd64 #1
not ok 2 b
KMATRIX-EXIT: 1
[    2.000000] reboot: Power down
"""


def test_extract_ktap() -> None:
    ktap = vm.extract_ktap(CONSOLE.splitlines())
    assert ktap.splitlines() == [
        "KTAP version 1",
        "1..2",
        "    KTAP version 1",
        "    # Subtest: kunit_suite",
        "    ok 1 kunit_case",
        "ok 1 a",
        "not ok 2 b",
    ]


def test_scan_console_ignores_module_taint_and_dedups_tainted_header() -> None:
    findings = vm.scan_console(CONSOLE)
    assert [(f.kind, f.line_no) for f in findings] == [("warning", 13)]
    assert "foo_init" in findings[0].excerpt


@pytest.mark.parametrize(
    ("line", "kind"),
    [
        ("[ 1.0] BUG: kernel NULL pointer dereference, address: 0000000000000000", "bug"),
        ("[ 1.0] Oops: 0002 [#1] PREEMPT SMP NOPTI", "oops"),
        ("[ 1.0] general protection fault, probably for non-canonical address", "gpf"),
        ("[ 1.0] refcount_t: underflow; use-after-free.", "refcount"),
        ("[ 1.0] Kernel panic - not syncing: Fatal exception", "panic"),
        ("[ 1.0] BUG: KASAN: slab-out-of-bounds in foo+0x1/0x2", "kasan"),
        ("[ 1.0] UBSAN: shift-out-of-bounds in lib/foo.c:1:2", "ubsan"),
        (
            "[ 1.0] kmemleak: 2 new suspected memory leaks (see /sys/kernel/debug/kmemleak)",
            "kmemleak",
        ),
        ("[ 1.0] Disabling lock debugging due to kernel taint", "taint"),
        ("[ 1.0] CPU: 0 PID: 1 Comm: sh Tainted: G      D    O  6.1.0 #1", "taint"),
        ("[ 1.0] INFO: task insmod:86 blocked for more than 120 seconds.", "hung-task"),
    ],
)
def test_scan_console_kinds(line: str, kind: str) -> None:
    text = f"noise\n{line}\n" + "\n".join(f"trace {i}" for i in range(60))
    findings = vm.scan_console(text)
    assert [(f.kind, f.line_no) for f in findings] == [(kind, 2)]
    excerpt = findings[0].excerpt.splitlines()
    # starts at the finding (the runner makes the first line the failure message)
    assert excerpt[0] == line and len(excerpt) == vm.EXCERPT_AFTER


OOPS_ON_LOAD = """\
[    3.143289] vexfs: loading out-of-tree module taints kernel.
[    3.164250] BUG: kernel NULL pointer dereference, address: 0000000000000000
[    3.166001] #PF: supervisor write access in kernel mode
[    3.167126] #PF: error_code(0x0002) - not-present page
[    3.168000] PGD 0 P4D 0
[    3.169163] Oops: 0002 [#1] PREEMPT SMP NOPTI
[    3.170000] CPU: 0 PID: 80 Comm: insmod Tainted: G           OE      6.1.0-50-amd64 #1
[    3.170500] RIP: 0010:vexfs_init+0x11/0x1000 [vexfs]
[    3.170898] Call Trace:
# insmod /lib/modules-test/vexfs.ko: exit 137: Killed
not ok 1 insmod
# dmesg: [    3.164250] BUG: kernel NULL pointer dereference, address: 0000000000000000
# dmesg: [    3.169163] Oops: 0002 [#1] PREEMPT SMP NOPTI
not ok 15 dmesg_clean
"""


def test_scan_console_one_finding_per_oops_not_from_ktap_diagnostics() -> None:
    findings = vm.scan_console(OOPS_ON_LOAD)
    assert [(f.kind, f.line_no) for f in findings] == [("bug", 2)]
    excerpt = findings[0].excerpt
    assert excerpt.startswith("[    3.164250] BUG: kernel NULL pointer dereference")
    assert "Oops: 0002" in excerpt and "RIP: 0010:vexfs_init" in excerpt
    # an Oops that is not the header of an earlier report is a finding of its own
    alone = "\n".join(line for line in OOPS_ON_LOAD.splitlines() if "BUG:" not in line)
    assert [f.kind for f in vm.scan_console(alone)] == ["oops"]


def test_extract_ktap_keeps_kernel_lines_out_unless_ktap() -> None:
    lines = [
        "KMATRIX-START",
        *OOPS_ON_LOAD.splitlines()[:9],
        "[ 3.2]     # Subtest: kunit_x",
        "KTAP version 1",
        "not ok 1 insmod",
        "KMATRIX-EXIT: 1",
    ]
    assert vm.extract_ktap(lines).splitlines() == [
        "    # Subtest: kunit_x",
        "KTAP version 1",
        "not ok 1 insmod",
    ]


@pytest.mark.parametrize(
    "line",
    [
        "[ 1.0] foo: loading out-of-tree module taints kernel.",
        "[ 1.0] CPU: 0 PID: 1 Comm: sh Tainted: G           OE     6.1.0 #1",
        "[ 1.0] CPU: 0 PID: 1 Comm: sh Tainted: G                 N 6.1.0 #1",
        "[ 1.0] CPU: 0 PID: 1 Comm: sh Not tainted 6.1.0-56-amd64 #1",
        "ok 1 BUG_fix_test",
        "  # dmesg: [ 1.0] BUG: kernel NULL pointer dereference, address: 0000000000000000",
        "not ok 3 Oops seen",
    ],
)
def test_scan_console_benign(line: str) -> None:
    assert vm.scan_console(line + "\n") == []


# ----------------------------------------------------------------- verdict logic


def _watch(lines: list[tuple[float, str]]) -> vm._Watch:
    w = vm._Watch(t0=0.0)
    for t, line in lines:
        w.feed(t, line)
    return w


def test_kernel_message_glued_to_a_marker_is_split_off() -> None:
    """The serial console as seen when a printk cut in before a marker's line end."""
    w = vm._Watch(t0=0.0)
    for t, raw in enumerate([
        b"KMATRIX-START[    2.144290] tsc: Refined TSC clocksource calibration: 2596 MHz\r",
        b"[    2.145557] clocksource: Switched to clocksource tsc\r", b"\r", b"ok 1 a\r",
        b"KMATRIX-EXIT: 0[    3.000001] vexfs: unloaded\r", b"\r",
    ]):
        vm._feed(w, float(t), raw)
    assert (w.start_t, w.exit_t, w.exit_code) == (0.0, 4.0, 0)
    assert "[    2.144290] tsc: Refined TSC clocksource calibration: 2596 MHz" in [
        line for _, line in w.lines]
    assert vm.extract_ktap([line for _, line in w.lines]) == "\nok 1 a\n"
    # a command's line that merely contains a timestamp stays whole
    assert vm._unglue("# dmesg: [    1.000000] vexfs: hi") == ["# dmesg: [    1.000000] vexfs: hi"]


def test_verdicts() -> None:
    spec = vm.VmSpec(kernel=Path("k"), boot_timeout=10, timeout=100, test_timeout=5)
    assert vm._verdict(spec, _watch([]), 9.9) is None
    assert vm._verdict(spec, _watch([]), 10)[0] == "boot-timeout"
    started = _watch([(2, "KMATRIX-START"), (3, "ok 1 a"), (4, "chatter")])
    assert vm._verdict(spec, started, 7.9) is None
    status, reason = vm._verdict(spec, started, 8)
    assert status == "timeout" and "'ok 1 a'" in reason
    done = _watch([(2, "KMATRIX-START"), (3, "KMATRIX-EXIT: 4")])
    assert done.exit_code == 4
    assert vm._verdict(spec, done, 3 + vm.POWEROFF_GRACE) == ("ok", "")
    panic = _watch([(2, "KMATRIX-START"), (3, "[ 1.0] Kernel panic - not syncing: boom")])
    assert vm._verdict(spec, panic, 3.1) is None
    assert vm._verdict(spec, panic, 3 + vm.PANIC_GRACE) == (
        "panic",
        "kernel panic: Kernel panic - not syncing: boom",
    )
    assert vm._verdict(spec, started, 100)[0] == "timeout"


def test_exit_marker_only_after_start() -> None:
    w = _watch([(1, "KMATRIX-EXIT: 0"), (2, "KMATRIX-START"), (3, "[ 1.2] KMATRIX-EXIT: 0")])
    assert (w.start_t, w.exit_t, w.exit_code) == (2, 3, 0)


# ----------------------------------------------------------------- kvm


def test_accel_env_forces(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(kvm.ACCEL_ENV, "tcg")
    assert kvm.kvm_usable() is False and kvm.select_accel() == "tcg"
    monkeypatch.setenv(kvm.ACCEL_ENV, "KVM")
    assert kvm.kvm_usable() is True
    monkeypatch.setenv(kvm.ACCEL_ENV, "xen")
    with pytest.raises(ValueError):
        kvm.kvm_usable()


def test_probe_command_matches_runs(tmp_path: Path) -> None:
    cmd = kvm.probe_command(tmp_path / "bios")
    assert cmd[cmd.index("-machine") + 1] == kvm.MACHINE
    assert cmd[cmd.index("-cpu") + 1] == kvm.KVM_CPU
    assert "isa-debug-exit,iobase=0xf4,iosize=4" in cmd


def test_stop_process_kills_group_and_reaps() -> None:
    proc = subprocess.Popen(["sh", "-c", "trap '' TERM; sleep 60 & wait"], start_new_session=True)
    kvm.stop_process(proc, grace=0.3)
    assert proc.returncode is not None
    assert not Path(f"/proc/{proc.pid}").exists()
    kvm.stop_process(proc)  # idempotent
