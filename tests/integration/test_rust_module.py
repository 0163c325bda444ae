"""The Rust module on a kernel built from Debian's linux-source: real Docker, real QEMU.

The kbuild-rust image builds a whole kernel (once per locked source version, see
docs/RUST-MODULE.md for the cost), so these tests never pay for it by accident. They run

* when KMATRIX_RUST_TESTS=1 (then the image is built if missing, and a kernel built from
  source is resolved from the Debian index if matrix.lock has none), or
* when the kbuild-rust image of matrix.lock's source-built kernel already exists (then
  they cost about a minute: the module builds and one boot).

Otherwise they are skipped with the reason. They use the Python API (images, executor,
vm), so they do not depend on how matrix.yml wires the jobs; the last test runs the
matrix's own `vm-test-rust` job when matrix.yml declares it.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from pipeline.debian.images import ImageBase, ImageBuilder, ImageCatalog
from pipeline.debian.lock import LockedKernel, read_lock, resolve_all
from pipeline.model.kernels import KernelSource
from pipeline.results.ktap import parse_ktap
from pipeline.run.executor import ContainerRunner, ContainerSpec, Mount, docker_client
from tests.conftest import ROOT, docker_available, run_cli

pytestmark = [
    pytest.mark.slow,
    pytest.mark.docker,
    pytest.mark.qemu,
    pytest.mark.skipif(not docker_available(), reason="Docker Engine not reachable"),
]

OPT_IN = os.environ.get("KMATRIX_RUST_TESTS") == "1"
# What `KMATRIX_RUST_TESTS=1` resolves when matrix.lock has no kernel built from source.
DEFAULT_SOURCE = KernelSource("7.3-rust", "trixie-backports", ("trixie", "trixie-backports"),
                              source="linux-source-7.3")
BUILD = """
cp -a "$SRC/kernel/." "$WORK/kernel"
make -C "$WORK/kernel" KDIR="$KDIR"
make -C "$WORK/kernel" tests/ioctl_smoke
start=$(date +%s%N)
make -C "$WORK/kernel/rust" KDIR="$KDIR"
echo "rust-module-build-ms $(( ($(date +%s%N) - start) / 1000000 ))"
cp "$WORK"/kernel/*.ko "$WORK"/kernel/rust/*.ko "$WORK/kernel/tests/ioctl_smoke" "$OUT/"
cp "$KERNEL_IMAGE" "$OUT/bzImage"
modinfo "$OUT/vexfs_rs.ko" "$OUT/vexfs.ko" > "$OUT/modinfo.txt"
"""
COMMAND = ("VEXFS_C_SUITE=/tests/run-ktap.sh VEXFS_KO=/lib/modules-test/vexfs.ko "
           "sh /tests/rust/run-ktap.sh /lib/modules-test/vexfs_rs.ko")


def _source_kernel() -> LockedKernel | None:
    for kernel in read_lock(ROOT / "matrix.lock").values():
        if kernel.from_source:
            return kernel
    if OPT_IN:
        return resolve_all([DEFAULT_SOURCE], {}, update=False)[DEFAULT_SOURCE.version]
    return None


@pytest.fixture(scope="module")
def image() -> tuple[LockedKernel, str]:
    kernel = _source_kernel()
    if kernel is None:
        pytest.skip("matrix.lock has no kernel built from source; "
                    "KMATRIX_RUST_TESTS=1 resolves and builds 7.3-rust")
    builder = ImageBuilder(docker_client(), ImageCatalog(ROOT / "images"), ImageBase())
    _, _, tag = builder.plan("kbuild-rust", kernel)
    if not OPT_IN and builder._exists(tag) is None:
        pytest.skip(f"image {tag} not built (it compiles a kernel once); "
                    "KMATRIX_RUST_TESTS=1 builds it")
    return kernel, builder.ensure("kbuild-rust", kernel).tag


@pytest.fixture(scope="module")
def built(image: tuple[LockedKernel, str], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Both modules, ioctl_smoke and the bzImage, built as a kmod-build-rust job would."""
    _, tag = image
    out, work = tmp_path_factory.mktemp("out"), tmp_path_factory.mktemp("work")
    for path in (out, work):
        path.chmod(0o777)
    spec = ContainerSpec(image=tag, script=BUILD, env={"SRC": "/src", "OUT": "/out",
                                                       "WORK": "/work"},
                         mounts=[Mount(ROOT, "/src", read_only=True), Mount(out, "/out"),
                                 Mount(work, "/work")])
    outcome = ContainerRunner(docker_client()).run(spec, timeout=900)
    assert outcome.exit_code == 0, outcome.output[-4000:]
    (out / "build.log").write_text(outcome.output)
    return out


def test_rust_module_builds_against_the_source_built_kernel(
        image: tuple[LockedKernel, str], built: Path) -> None:
    kernel, _ = image
    modinfo = (built / "modinfo.txt").read_text()
    assert "name:           vexfs_rs" in modinfo and "name:           vexfs\n" in modinfo
    assert f"vermagic:       {kernel.abi} " in modinfo
    # Rust symbols (v0 mangling) in the Rust module only
    assert b"_RNv" in (built / "vexfs_rs.ko").read_bytes()
    assert b"_RNv" not in (built / "vexfs.ko").read_bytes()
    assert "rust-module-build-ms" in (built / "build.log").read_text()


@pytest.fixture(scope="module")
def vexctl(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The static vexctl, built by the matrix's own vexctl-static job."""
    out = tmp_path_factory.mktemp("vexctl")
    proc = run_cli("job", "vexctl-static", "--dir", str(out))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return out / "vexctl-static" / "artifacts" / "vexctl"


def test_vm_boots_the_built_kernel_and_vexctl_talks_to_both_modules(
        built: Path, vexctl: Path, tmp_path: Path) -> None:
    from pipeline.run.vm import VmSpec, run_vm

    spec = VmSpec(
        kernel=built / "bzImage",
        modules=[built / "vexfs.ko", built / "vexfs_rs.ko"],
        binaries=[vexctl],
        files={"/tests/run-ktap.sh": ROOT / "kernel" / "tests" / "run-ktap.sh",
               "/tests/ioctl_smoke": built / "ioctl_smoke",
               "/tests/rust/run-ktap.sh": ROOT / "kernel" / "rust" / "tests" / "run-ktap.sh"},
        command=COMMAND, boot_timeout=60, timeout=240, test_timeout=60,
    )
    started = time.monotonic()
    result = run_vm(spec, tmp_path)
    assert result.status == "ok", result.reason + "\n" + result.console[-4000:]
    assert result.exit_code == 0, result.console[-4000:]
    cases = list(parse_ktap(result.ktap, suite_name="rust"))
    names = {c.name for c in cases}
    failed = [c.name for c in cases if c.result and type(c.result[0]).__name__ != "Skipped"]
    skipped = [c.name for c in cases if c.result and type(c.result[0]).__name__ == "Skipped"]
    assert not failed, result.ktap
    assert not skipped, result.ktap  # vexctl is there, both modules load: nothing to skip
    for name in ("insmod", "vexctl_stats", "search_l2", "search_dot", "search_ties_by_ino",
                 "err_get_vector_enotty", "stats_counts_searches", "rmmod", "dmesg_clean"):
        assert name in names, sorted(names)
    # the C module's suite ran nested, on the same kernel
    nested = [n for n in names if n.startswith("c_module_suite.")]
    assert {"c_module_suite.insmod", "c_module_suite.rmmod"} <= set(nested), sorted(names)
    assert len(nested) > 10, sorted(names)
    assert time.monotonic() - started < 240


def test_matrix_vm_test_rust_job_passes(image: tuple[LockedKernel, str],
                                        tmp_path: Path) -> None:
    listed = run_cli("list", "--json")
    if "vm-test-rust/" not in listed.stdout:
        pytest.skip("matrix.yml has no vm-test-rust job yet")
    proc = run_cli("run", "--job", "vm-test-rust/*", "--reports", str(tmp_path))
    assert proc.returncode == 0, proc.stdout + proc.stderr
