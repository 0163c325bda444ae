"""The Rust module, both ways docs/RUST-MODULE.md describes: real Docker, real QEMU.

- "debian": built in the kbuild-rust-debian image (Debian's linux-source prepared with the
  config of Debian's CONFIG_RUST=y 7.3 kernel) and loaded into Debian's own 7.3 image.
- "source": built in the kbuild-rust image, which compiles a small CONFIG_RUST=y kernel from
  linux-source once per locked source version (cached by content hash; a cold machine pays
  about 15 minutes here once), and loaded into that kernel.

These tests never skip on a machine with Docker and QEMU: `make test` builds the images
when they are missing. They use the Python API (images, executor, vm), so they do not
depend on how matrix.yml wires the jobs; the last test runs the matrix's own
`vm-test-rust` job.

The VM test runs the ONE suite (kernel/tests/run-ktap.sh) against the C module and then
against the Rust module (kernel/rust/tests/run-ktap.sh nests both runs), and checks that
the Rust run has exactly the C run's cases, that none failed, and that every case the
Rust module skips says why and is one this file lists.
"""

from __future__ import annotations

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

# What is resolved when matrix.lock has no kernel built from source.
DEFAULT_SOURCE = KernelSource("7.3-rust", "trixie-backports", ("trixie", "trixie-backports"),
                              source="linux-source-7.3")
BUILD = """
cp -a "$SRC/kernel/." "$WORK/kernel"
mkdir -p "$WORK/userspace/src"
for f in abi errcode filter store vector; do
  cp "$SRC/userspace/src/$f.rs" "$WORK/userspace/src/"
done
make -C "$WORK/kernel" KDIR="$KDIR"
make -C "$WORK/kernel" tests/ioctl_smoke
start=$(date +%s%N)
make -C "$WORK/kernel/rust" KDIR="$KDIR" KRUSTFLAGS=-Dwarnings
echo "rust-module-build-ms $(( ($(date +%s%N) - start) / 1000000 ))"
cp "$WORK"/kernel/*.ko "$WORK"/kernel/rust/*.ko "$WORK/kernel/tests/ioctl_smoke" "$OUT/"
if [ -n "${KERNEL_IMAGE:-}" ]; then cp "$KERNEL_IMAGE" "$OUT/bzImage"; fi
modinfo "$OUT/vexfs_rs.ko" "$OUT/vexfs.ko" > "$OUT/modinfo.txt"
"""
COMMAND = ("sh /tests/rust/run-ktap.sh /tests/run-ktap.sh /lib/modules-test/vexfs.ko "
           "/lib/modules-test/vexfs_rs.ko")
# The cases the Rust module (a misc device, no filesystem) skips, and why.
RUST_SKIPS = {
    "mount.dim0_einval": "no mount options", "mount.dim4097_einval": "no mount options",
    "mount.dim_not_a_number_einval": "no mount options",
    "mount.unknown_option_einval": "no mount options",
    "mount.default_and_max_dim": "no mount options", "mount.dim3_separate": "no mount options",
    "fs_basic_ops": "tmpfs", "vectors.rename_keeps_vector": "renamed",
    "vectors.unlink_frees_vector": "last unlink", "index.tracks_unlink": "last unlink",
    "index.hybrid_after_rename": "renamed", "errors.get_on_directory_eisdir": "directories",
    "ioctl_smoke": "regular files",
}


def _source_kernel() -> LockedKernel:
    for kernel in read_lock(ROOT / "matrix.lock").values():
        if kernel.from_source:
            return kernel
    return resolve_all([DEFAULT_SOURCE], {}, update=False)[DEFAULT_SOURCE.version]


@pytest.fixture(scope="module", params=["debian", "source"])
def image(request: pytest.FixtureRequest) -> tuple[LockedKernel, str]:
    """(kernel, image tag): Debian's 7.3 and kbuild-rust-debian, or the kernel built from
    source and kbuild-rust."""
    if request.param == "debian":
        kernel, flavour = read_lock(ROOT / "matrix.lock")["7.3"], "kbuild-rust-debian"
    else:
        kernel, flavour = _source_kernel(), "kbuild-rust"
    builder = ImageBuilder(docker_client(), ImageCatalog(ROOT / "images"), ImageBase())
    return kernel, builder.ensure(flavour, kernel).tag


@pytest.fixture(scope="module")
def built(image: tuple[LockedKernel, str], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Both modules, ioctl_smoke (and the bzImage of a kernel built from source), built as
    a kmod-build-rust job would."""
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


def test_rust_module_builds_against_the_kernel(
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


def test_vm_runs_the_same_suite_on_both_modules(
        image: tuple[LockedKernel, str], built: Path, vexctl: Path, tmp_path: Path) -> None:
    from pipeline.debian.kernels import kernel_image
    from pipeline.run.vm import VmSpec, run_vm

    kernel, _ = image
    spec = VmSpec(
        kernel=built / "bzImage" if kernel.from_source else kernel_image(kernel),
        modules=[built / "vexfs.ko", built / "vexfs_rs.ko"],
        binaries=[vexctl],
        files={"/tests/run-ktap.sh": ROOT / "kernel" / "tests" / "run-ktap.sh",
               "/tests/ioctl_smoke": built / "ioctl_smoke",
               "/tests/rust/run-ktap.sh": ROOT / "kernel" / "rust" / "tests" / "run-ktap.sh"},
        command=COMMAND, boot_timeout=60, timeout=240, test_timeout=90,
    )
    result = run_vm(spec, tmp_path)
    assert result.status == "ok", result.reason + "\n" + result.console[-4000:]
    cases = list(parse_ktap(result.ktap, suite_name="both"))
    outcome = {c.name: (type(c.result[0]).__name__ if c.result else "passed",
                        c.result[0].message if c.result else "") for c in cases}
    failed = sorted(n for n, (kind, _) in outcome.items() if kind not in ("passed", "Skipped"))
    assert not failed, result.ktap
    c_cases = {n.removeprefix("c.") for n in outcome if n.startswith("c.")}
    rust_cases = {n.removeprefix("rust.") for n in outcome if n.startswith("rust.")}
    smoke = {n for n in c_cases if n.startswith("ioctl_smoke.")}
    assert len(c_cases) >= 119 and smoke, sorted(c_cases)  # the C suite: 119 KTAP cases
    # the same cases; ioctl_smoke's nested ones exist only where it ran (the C module),
    # the Rust run has the skipped parent case instead
    assert rust_cases - {"ioctl_smoke"} == c_cases - smoke, sorted(
        (rust_cases - {"ioctl_smoke"}) ^ (c_cases - smoke))
    assert not [n for n in c_cases if outcome["c." + n][0] == "Skipped"], result.ktap
    skipped = {n: outcome["rust." + n][1] or "" for n in rust_cases
               if outcome["rust." + n][0] == "Skipped"}
    assert set(skipped) == set(RUST_SKIPS), sorted(set(skipped) ^ set(RUST_SKIPS))
    for name, why in skipped.items():
        assert RUST_SKIPS[name] in why, (name, why)
    assert result.exit_code == 0, result.console[-4000:]


def test_matrix_vm_test_rust_job_passes(tmp_path: Path) -> None:
    assert "vm-test-rust/7.3" in run_cli("list", "--json").stdout
    proc = run_cli("run", "--job", "vm-test-rust/*", "--reports", str(tmp_path))
    assert proc.returncode == 0, proc.stdout + proc.stderr
