"""The VM runtime: the job's kernel booted in QEMU with its modules, binaries and command.

QEMU's binary and machine follow the kernel's architecture (its matrix.lock entry: `6.12`
boots in qemu-system-x86_64, `6.12:arm64` in qemu-system-aarch64 with that entry's busybox).
"""

from __future__ import annotations

import math
import shlex
import string
import time
from pathlib import Path
from typing import TYPE_CHECKING

from junitparser import Error, Failure, TestCase

from pipeline.errors import InputError
from pipeline.model.expand import Job
from pipeline.paths import cache_dir
from pipeline.results.status import ERROR, FAILED, INTERRUPTED
from pipeline.run.frame import JobFrame
from pipeline.run.inputs import InputTree, job_tree
from pipeline.run.runtimes.base import Runtime, register

if TYPE_CHECKING:
    from pipeline.debian.lock import LockedKernel
    from pipeline.run.vm import VmResult, VmSpec


def vm_path(value: str, env: dict[str, str], needs: list[str]) -> Path:
    """Expand $SRC/$NEEDS/...; $NEEDS/<need id>/x means that need's artifacts/x. The id may
    leave out trailing axis values when exactly one need has the rest: in a cell that needs
    kmod-build/6.12/arm64, $NEEDS/kmod-build/6.12/x (and $NEEDS/kmod-build/x) is its x."""
    path = string.Template(value).safe_substitute(env)
    for need in sorted(needs, key=len, reverse=True):
        prefix = f"{env['NEEDS']}/{need}/"
        if path.startswith(prefix):
            return Path(prefix, "artifacts", path[len(prefix):])
    root = f"{env['NEEDS']}/"
    if path.startswith(root):
        parts = path[len(root):].split("/")
        for n in range(len(parts) - 1, 0, -1):
            written = "/".join(parts[:n])
            found = [need for need in needs if need.startswith(written + "/")]
            if len(found) == 1:
                return Path(root, found[0], "artifacts", *parts[n:])
    return Path(path)


def matching(path: Path) -> list[Path]:
    """The files a `*` or `?` pattern in the last part names, sorted (the pattern itself
    when nothing matches, so that it is reported missing)."""
    if not any(c in path.name for c in "*?["):
        return [path]
    return sorted(p for p in path.parent.glob(path.name) if p.is_file()) or [path]


@register
class VmRuntime(Runtime):
    """A job with `vm:`: one QEMU boot of its kernel; the console is its log, the KTAP
    between the markers its tests, kernel splats its failures."""

    name = "vm"

    def __init__(self, frame: JobFrame) -> None:
        super().__init__(frame)
        self.kernel: LockedKernel | None = None
        self.spec: VmSpec | None = None
        self.result: VmResult | None = None  # set once the run was fully recorded

    @classmethod
    def handles(cls, job: Job) -> bool:
        return job.spec.vm is not None

    def prepare(self) -> bool:
        """Resolve the kernel and the VM's input files; a missing input is the job's error."""
        from pipeline.run.vm import VmSpec

        frame, ctx, job, decl = self.frame, self.frame.ctx, self.frame.job, self.frame.job.spec.vm
        assert decl is not None
        kernel = ctx.kernels.get(job.kernel_key) if job.kernel else None
        if kernel is None:
            raise InputError(f"job {job.name!r} has `vm:` but does not run over kernels",
                             hint="add `over: [kernel]`")
        self.kernel = kernel
        tree = job_tree(ctx, job)  # $SRC: the job's inputs only, as a container's /src
        frame.emit(f"== inputs at $SRC: {tree.describe()}")
        env = {**job.job_env(), "SRC": str(tree.path),
               "NEEDS": str(ctx.needs_dir or ctx.run_dir), "KERNEL_ABI": kernel.abi}
        needs = list(job.needs)
        modules = [p for m in decl.modules for p in matching(vm_path(m, env, needs))]
        binaries = [vm_path(b, env, needs) for b in decl.binaries]
        files = {k: vm_path(v, env, needs) for k, v in decl.files.items()}
        explicit_kernel = vm_path(decl.kernel, env, needs) if decl.kernel else None
        missing = [p for p in [*modules, *binaries, *files.values(),
                               *filter(None, [explicit_kernel])] if not p.is_file()]
        if missing:
            self._missing(missing, tree)
            return False
        self.spec = VmSpec(
            kernel=self._vmlinuz(explicit_kernel), modules=modules, binaries=binaries,
            files=files, command=string.Template(decl.command).safe_substitute(env),
            memory_mb=decl.memory, boot_timeout=decl.boot_timeout,
            timeout=max(math.ceil(job.timeout - (time.monotonic() - frame.started)), 1),
            test_timeout=decl.test_timeout, append=decl.append,
            label=f"kmatrix:{ctx.run_id}:{job.id}", arch=kernel.arch,
            busybox=self._busybox())
        return True

    def _busybox(self) -> Path | None:
        """The lock's busybox of a kernel of another architecture (None: the host's)."""
        from pipeline.debian.kernels import busybox_binary

        assert self.kernel is not None
        busybox = busybox_binary(self.kernel)
        if busybox is not None:
            assert self.kernel.busybox is not None
            self.frame.emit(f"== busybox {self.kernel.busybox.package} "
                            f"{self.kernel.busybox.version} ({self.kernel.arch})")
        return busybox

    def _missing(self, missing: list[Path], tree: InputTree) -> None:
        """The job's error for VM inputs that are not there; files taken from $SRC that the
        job's inputs leave out get the `inputs:` line to add."""
        from pipeline.run.undeclared import missing_inputs, undeclared_message

        frame = self.frame
        shown = [f"$SRC/{p.relative_to(tree.path)}" if p.is_relative_to(tree.path) else str(p)
                 for p in missing]
        message = f"missing VM input(s): {', '.join(shown)}"
        assert frame.ctx.inputs is not None
        paths = missing_inputs("\n".join(f"/src/{s[5:]}: No such file" for s in shown
                                         if s.startswith("$SRC/")),
                               frame.ctx.inputs.source.matched(()), tree.files)
        if paths:
            message += f"; {undeclared_message(frame.job, paths)}"
            frame.extra["undeclared_inputs"] = paths
        frame.emit(f"== error: {message}")
        frame.fail(ERROR, message)
        frame.error_case("vm-inputs", message, "missing-input")

    def _vmlinuz(self, explicit: Path | None) -> Path:
        from pipeline.debian.kernels import kernel_image

        if explicit is not None:
            self.frame.emit(f"== kernel {explicit}")
            return explicit
        assert self.kernel is not None
        self.frame.emit(f"== kernel {self.kernel.image.package} {self.kernel.image.version}")
        return kernel_image(self.kernel)

    def run(self) -> None:
        """Boot, log the console, then judge: tests, kernel findings, the VM's outcome."""
        from pipeline.run.vm import run_vm

        frame, spec = self.frame, self.spec
        assert spec is not None
        workdir = frame.artifacts
        frame.emit(f"== boot (timeout {spec.timeout:.0f} s, boot {spec.boot_timeout} s"
                   + (f", per test {spec.test_timeout} s)" if spec.test_timeout else ")"))
        result = run_vm(spec, workdir, kernel_cache=cache_dir() / "kernels" / "pvh",
                        cancel=frame.ctx.cancel)
        for line in result.console.splitlines():
            frame.emit(line)
        (workdir / "ktap.txt").write_text(result.ktap)
        frame.emit(f"== vm: {result.status} (exit {result.exit_code}), boot "
                   f"{result.boot_seconds:.2f} s, tests {result.test_seconds:.2f} s, "
                   f"{result.accel}")
        frame.extra["vm"] = {"status": result.status, "exit_code": result.exit_code,
                             "boot_seconds": result.boot_seconds,
                             "test_seconds": result.test_seconds, "accel": result.accel,
                             "kernel": str(spec.kernel)}
        frame.steps.append({"name": "vm", "exit_code": result.exit_code,
                            "seconds": round(result.boot_seconds + result.test_seconds, 3),
                            "network": False, "error": None if result.status == "ok"
                            else result.status})
        self._judge(result)
        self.result = result

    def _judge(self, result: VmResult) -> None:
        """Test cases and status from the KTAP, the console's findings and the outcome."""
        from pipeline.results.ktap import parse_ktap
        from pipeline.run.vm import scan_console

        frame, job = self.frame, self.frame.job
        assert job.spec.vm is not None
        if job.spec.vm.results == "ktap":
            frame.suite.add_testcases(list(parse_ktap(result.ktap,
                                                      suite_name=f"{job.id}.ktap")))
        vm_case = TestCase("vm", classname=job.id,
                           time=round(result.boot_seconds + result.test_seconds, 3))
        # Kernel findings first: the job's message should name the BUG/Oops, not its effect.
        for finding in scan_console(result.console):
            case = TestCase(f"dmesg.{finding.kind}@{finding.line_no}", classname=job.id)
            fail = Failure(finding.excerpt.splitlines()[0][:400], f"kernel-{finding.kind}")
            fail.text = finding.excerpt
            case.result = [fail]
            frame.suite.add_testcase(case)
            frame.fail(FAILED, f"kernel {finding.kind}: "
                               f"{finding.excerpt.splitlines()[0][:200]}")
        if result.status != "ok":
            err = Error(f"{result.status}: {result.reason.splitlines()[0][:400]}",
                        result.status)
            err.text = result.reason
            vm_case.result = [err]
            if result.status == "interrupted":
                frame.fail(INTERRUPTED, "run interrupted")
            frame.fail(FAILED, f"VM {result.status}: {result.reason.splitlines()[0][:200]}")
        elif result.exit_code != 0:
            fail = Failure(f"the VM command exited {result.exit_code}", "exit-status")
            fail.text = "\n".join(result.console.splitlines()[-40:])
            vm_case.result = [fail]
            frame.fail(FAILED, f"VM command exited {result.exit_code}")
        frame.suite.add_testcase(vm_case)

    def reproduce_lines(self) -> list[str]:
        """The QEMU command line, run next to the kept initramfs."""
        from pipeline.run.vm import qemu_command

        if self.result is None or self.spec is None or self.kernel is None:
            return []
        image, workdir = self.kernel.image, self.frame.artifacts
        cmd = qemu_command(self.spec, workdir / "initramfs.cpio.gz", self.result.accel)
        return [
            f"# kernel: {image.package} {image.version} ({image.url(self.kernel.mirror)})",
            "# the initramfs (busybox, module, binaries, tests) is kept next to this script",
            'cd "$(dirname "$0")/artifacts"',
            " ".join(shlex.quote(c) for c in cmd).replace(
                shlex.quote(str(workdir / "initramfs.cpio.gz")), "initramfs.cpio.gz"),
        ]
