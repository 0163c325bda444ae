"""(g) kmatrix's VM test beside virtme-ng's: the same kernel, module and KTAP script, TCG.

    .venv/bin/python bench/virtme.py [--kernel 6.1] [--runs 5] [--keep]

virtme-ng (`vng`, pinned VNG_VERSION) is installed from PyPI into its own venv under the
kmatrix cache (`<cache>/bench/virtme-ng-<version>/venv`), never into the project's. It boots
the host's root file system over 9p, so it needs the kernel's modules tree (9p, netfs and
virtio are modules in Debian's kernels): the locked linux-image .deb is downloaded
(SHA256-checked) and unpacked whole under `<cache>/bench/kernel-roots/`, where vng finds
`lib/modules/<abi>` next to `boot/vmlinuz-<abi>`, and `kmod` (depmod, modprobe) must be
installed. Without that tree vng's initramfs has no 9p, its `mount -t 9p` fails with "No
such device", its init exits ("Failed to mount real root. We are stuck.") and the kernel
panics ("Attempted to kill init! exitcode=0x00000100"): the failure seen before.

On a snapshot of the project (as bench/vm_boot.py: a warm-up `pipeline run --job
vm-test/<k>` builds the module and vexctl), then N rounds, alternating which side goes
first, each side a whole process:

  kmatrix    `pipeline job vm-test/<k> --needs-dir ...`, result cache off, KMATRIX_ACCEL=tcg
  virtme-ng  `vng --run <vmlinuz> --disable-kvm --force-9p --force-initramfs --cpus 1
             --memory 512M -v --append "quiet loglevel=1" --exec "<command>"`

The command is the vm-test job's: `sh run-ktap.sh vexfs.ko` with ioctl_smoke next to the
script and vexctl and busybox's applets first in PATH (the script expects busybox's
`mount` messages, as in kmatrix's initramfs); VEXFS_MNT=/tmp/vexfs because vng's root is
the host's, read-only. `-v` puts the console (where vng's init writes the script's output
when the host has no udev for its virtio-serial ports) on stderr; `quiet loglevel=1`
after it keeps the boot as quiet as vng's default. Both runs must give the same number of
KTAP cases, all passing. The ratio is kmatrix / virtme-ng of the medians; goal <= GOAL.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
for _path in (str(ROOT), str(BENCH)):
    if _path not in sys.path:
        sys.path.insert(0, _path)

import vm_boot  # noqa: E402

from pipeline.run.kvm import stop_process  # noqa: E402

VNG_VERSION = "1.42"
GOAL = 0.5
MNT = "/tmp/vexfs"
VNG_FLAGS = ("--disable-kvm", "--force-9p", "--force-initramfs", "--cpus", "1",
             "--memory", "512M", "-v", "--append", "quiet loglevel=1")


def log(message: str) -> None:
    print(f"virtme: {message}", file=sys.stderr, flush=True)


def bench_cache() -> Path:
    from pipeline.paths import cache_dir

    return cache_dir() / "bench"


def vng_binary(version: str = VNG_VERSION) -> Path:
    """`vng` of virtme-ng `version` in its own venv (created and installed once)."""
    venv = bench_cache() / f"virtme-ng-{version}" / "venv"
    vng = venv / "bin" / "vng"
    if vng.is_file():
        return vng
    log(f"installing virtme-ng {version} into {venv}")
    shutil.rmtree(venv, ignore_errors=True)
    base = getattr(sys, "_base_executable", sys.executable)
    subprocess.run([base, "-m", "venv", str(venv)], check=True)
    subprocess.run([str(venv / "bin" / "pip"), "install", "-q", f"virtme-ng=={version}"],
                   check=True, timeout=900)
    return vng


def missing_tools() -> list[str]:
    """Host tools the comparison needs that are not installed (apt package in brackets)."""
    wanted = {"dpkg-deb": "dpkg", "depmod": "kmod", "modprobe": "kmod",
              "qemu-system-x86_64": "qemu-system-x86", "busybox": "busybox-static"}
    path = os.environ.get("PATH", "") + ":/usr/sbin:/sbin"
    return [f"{tool} ({pkg})" for tool, pkg in wanted.items()
            if shutil.which(tool, path=path) is None]


def kernel_root(kernel_key: str, lock: Path) -> Path:
    """The vmlinuz of the locked image package, unpacked with its modules tree."""
    from pipeline.debian.lock import read_lock

    locked = read_lock(lock)[kernel_key]
    package = locked.image
    root = bench_cache() / "kernel-roots" / package.sha256[:24]
    found = sorted(root.glob("boot/vmlinuz-*")) + sorted(root.glob("usr/lib/modules/*/vmlinuz"))
    if found:
        return found[0]
    deb = root.with_suffix(".deb")
    deb.parent.mkdir(parents=True, exist_ok=True)
    log(f"downloading {package.package} {package.version}")
    with urllib.request.urlopen(package.url(locked.mirror), timeout=300) as response:
        deb.write_bytes(response.read())
    digest = hashlib.sha256(deb.read_bytes()).hexdigest()
    if digest != package.sha256:
        deb.unlink()
        raise SystemExit(f"virtme: {package.package}: SHA256 {digest}, the lock pins "
                         f"{package.sha256}")
    tmp = Path(tempfile.mkdtemp(dir=root.parent))
    subprocess.run(["dpkg-deb", "-x", str(deb), str(tmp)], check=True)
    if not any(tmp.glob("lib/modules/*/kernel")) and not any(
            tmp.glob("usr/lib/modules/*/kernel")):
        shutil.rmtree(tmp)
        raise SystemExit(f"virtme: {package.package} has no modules tree (vng needs its 9p "
                         "and virtio modules); pick a kernel whose image package has one")
    tmp.rename(root)
    deb.unlink()
    return kernel_root(kernel_key, lock)


def guest_tree(dest: Path, needs: Path, kernel: str, script: Path) -> dict[str, Path]:
    """The vm-test job's files laid out for vng: tests/ (script + ioctl_smoke next to it),
    bin/ (vexctl and busybox's applets, first in PATH) and the module."""
    artifacts = needs / "kmod-build" / kernel / "artifacts"
    tests, bindir = dest / "tests", dest / "bin"
    tests.mkdir(parents=True)
    bindir.mkdir()
    shutil.copy2(script, tests / "run-ktap.sh")
    shutil.copy2(artifacts / "ioctl_smoke", tests / "ioctl_smoke")
    shutil.copy2(needs / "vexctl-static" / "artifacts" / "vexctl", bindir / "vexctl")
    busybox = Path(shutil.which("busybox") or "/bin/busybox")
    applets = subprocess.run([str(busybox), "--list"], capture_output=True, text=True,
                             check=True).stdout.split()
    for applet in applets:
        if not (bindir / applet).exists():
            (bindir / applet).symlink_to(busybox)
    return {"tests": tests, "bin": bindir, "module": artifacts / "vexfs.ko"}


def vng_command(vng: Path, vmlinuz: Path, tree: dict[str, Path]) -> list[str]:
    command = (f"PATH={tree['bin']}:$PATH VEXFS_MNT={MNT} "
               f"sh {tree['tests']}/run-ktap.sh {tree['module']}")
    return [str(vng), "--run", str(vmlinuz), *VNG_FLAGS, "--exec", command]


def ktap_counts(text: str) -> tuple[int, int]:
    """(cases, failed or errored) of the KTAP in `text`, as the vm-test job counts them."""
    from pipeline.results.ktap import parse_ktap

    start = text.find("KTAP version 1")
    suite = parse_ktap(text[start:] if start >= 0 else "", suite_name="vng")
    return suite.tests, suite.failures + suite.errors


def run_vng(cmd: list[str], workdir: Path, timeout: float = 600) -> dict[str, Any]:
    """One vng run (its venv first in PATH: vng runs `virtme-run`): wall time, time to its
    first KTAP line, KTAP counts, console tail."""
    t0 = time.perf_counter()
    first: float | None = None
    lines: list[str] = []
    env = {**os.environ, "PATH": f"{Path(cmd[0]).parent}:{os.environ.get('PATH', '')}"}
    proc = subprocess.Popen(cmd, cwd=workdir, env=env, stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            errors="replace", start_new_session=True)
    assert proc.stdout is not None
    watchdog = threading.Timer(timeout, _kill_group, (proc,))
    watchdog.start()
    try:
        for line in proc.stdout:
            lines.append(line.rstrip("\n"))
            if first is None and line.strip() == "KTAP version 1":
                first = time.perf_counter() - t0
    finally:
        watchdog.cancel()
        stop_process(proc, grace=5.0)  # at EOF vng is done: this only reaps it
    wall = time.perf_counter() - t0
    text = "\n".join(lines)
    tests, failed = ktap_counts(text)
    return {"wall": wall, "to_ktap": first, "ktap": None if first is None else wall - first,
            "exit": proc.returncode, "tests": tests, "failed": failed,
            "panic": "Kernel panic" in text, "tail": lines[-15:]}


def _kill_group(proc: subprocess.Popen[str]) -> None:
    """SIGKILL the session of a vng run that is late (its QEMU included); not reaped yet."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)


def run_kmatrix(root: Path, env: dict[str, str], kernel: str, out: Path,
                needs: Path) -> dict[str, Any]:
    run = vm_boot.one_run(root, env, kernel, out, needs)
    ktap = out / "vm-test" / kernel / "artifacts" / "ktap.txt"
    tests, failed = ktap_counts(ktap.read_text()) if ktap.is_file() else (0, 0)
    return {**run, "wall": run["job"], "ktap_tests": tests, "ktap_failed": failed}


def median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def summarize(kernel: str, km: list[dict[str, Any]], vn: list[dict[str, Any]],
              vng_cmd: list[str]) -> dict[str, Any]:
    """The (g) row: ratio of the medians of the passing runs, with all samples."""
    km_ok = [r for r in km if r["status"] == "passed"]
    want = max((r["ktap_tests"] for r in km_ok), default=0)
    vn_ok = [r for r in vn if r["failed"] == 0 and r["tests"] == want and want > 0]
    km_wall, vn_wall = median([r["wall"] for r in km_ok]), median([r["wall"] for r in vn_ok])
    ratio = km_wall / vn_wall if km_wall and vn_wall else None
    if ratio is None:
        bad = next((r for r in vn if r not in vn_ok), None)
        detail = ("virtme-ng run failed: " + (f"{bad['tests']} KTAP cases, {bad['failed']} "
                  f"failed, exit {bad['exit']}; last lines: {' | '.join(bad['tail'][-6:])}"
                  if bad else "no passing run on one side"))
    else:
        detail = (f"{kernel}, medians of {len(km_ok)}/{len(vn_ok)} alternating runs, whole "
                  f"processes: kmatrix {km_wall:.2f} s (boot "
                  f"{median([r['boot'] for r in km_ok]):.2f} + tests "
                  f"{median([r['test'] for r in km_ok]):.2f} s in QEMU), virtme-ng "
                  f"{VNG_VERSION} {vn_wall:.2f} s (to the first KTAP line "
                  f"{median([r['to_ktap'] for r in vn_ok]):.2f} s, KTAP "
                  f"{median([r['ktap'] for r in vn_ok]):.2f} s); {want} KTAP cases each; "
                  f"load {os.getloadavg()[0]:.1f}")
    return {"title": "kmatrix VM test / virtme-ng on the same kernel, module and KTAP "
                     "script (TCG)",
            "value": ratio, "unit": "x", "goal": f"<= {GOAL}",
            "met": None if ratio is None else ratio <= GOAL, "detail": detail,
            "kernel": kernel, "vng_version": VNG_VERSION, "vng_command": vng_cmd,
            "kmatrix_runs": km, "vng_runs": vn}


def measure(kernel: str = "6.1", runs: int = 5, keep: bool = False) -> dict[str, Any]:
    """Build the needs, then `runs` alternating rounds of both sides; the (g) row."""
    missing = missing_tools()
    if missing:
        return {"title": "kmatrix VM test / virtme-ng", "value": None, "unit": "x",
                "goal": f"<= {GOAL}", "met": None,
                "detail": f"not run: missing {', '.join(missing)}"}
    vng = vng_binary()
    vmlinuz = kernel_root(kernel, ROOT / "matrix.lock")
    tmp = Path(tempfile.mkdtemp(prefix="kmatrix-virtme-bench-"))
    try:
        root = vm_boot.snapshot(tmp)
        env = {**os.environ, "KMATRIX_RESULT_CACHE_DIR": str(tmp / "results"),
               "KMATRIX_ACCEL": "tcg"}
        log(f"{kernel}: building the needs, one warm-up boot each side")
        warm = vm_boot.pipeline(root, env, "run", "--job", f"vm-test/{kernel}")
        if warm.returncode != 0:
            raise SystemExit(f"virtme: warm-up run failed:\n{warm.stdout[-3000:]}")
        needs = (root / "reports" / "latest").resolve()
        tree = guest_tree(tmp / "guest", needs, kernel, root / "kernel/tests/run-ktap.sh")
        cmd = vng_command(vng, vmlinuz, tree)
        first = run_vng(cmd, tmp)  # warm-up: depmod of the modules tree, page cache
        if first["failed"] or not first["tests"]:
            log("virtme-ng warm-up run failed; last lines:\n  " + "\n  ".join(first["tail"]))
        env["KMATRIX_RESULT_CACHE_MB"] = "0"
        km: list[dict[str, Any]] = []
        vn: list[dict[str, Any]] = []
        for i in range(runs):
            sides = [("kmatrix", km), ("virtme-ng", vn)]
            for name, samples in sides if i % 2 == 0 else reversed(sides):
                samples.append(run_kmatrix(root, env, kernel, tmp / "runs" / str(i), needs)
                               if name == "kmatrix" else run_vng(cmd, tmp))
                r = samples[-1]
                log(f"round {i + 1}/{runs} {name}: {r['wall']:.2f} s, "
                    f"{r.get('ktap_tests', r['tests'])} KTAP cases"
                    f" (load {os.getloadavg()[0]:.1f})")
    finally:
        if keep:
            log(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    return summarize(kernel, km, vn, cmd)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--kernel", default="6.1", help="vm-test kernel (default 6.1)")
    ap.add_argument("--runs", type=int, default=5, help="rounds (default 5)")
    ap.add_argument("--keep", action="store_true", help="keep the temporary directory")
    ap.add_argument("--output", type=Path, help="write the result as JSON here")
    args = ap.parse_args(argv)
    result = measure(args.kernel, max(1, args.runs), args.keep)
    if args.output:
        args.output.write_text(json.dumps(result, indent=2) + "\n")
    value = result["value"]
    print(f"(g) {'-' if value is None else f'{value:.2f}x'} (goal {result['goal']}): "
          f"{result['detail']}")
    return 0 if value is not None else 1


if __name__ == "__main__":
    sys.exit(main())
