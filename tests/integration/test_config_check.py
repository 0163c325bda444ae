"""pipeline/images/config-check.sh: the check kernel-prepare.j2 runs after `olddefconfig`,
that a kernel source prepared with Debian's .config still matches what Debian built."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from pipeline.debian.dockerfile import bootstrap_plan
from pipeline.debian.images import ImageBase, ImageCatalog, rootfs_tag
from pipeline.debian.lock import read_lock

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "pipeline" / "images" / "config-check.sh"
DEBIAN = """CONFIG_CC_IS_GCC=y
CONFIG_GCC_VERSION=140200
CONFIG_RUSTC_VERSION_TEXT="rustc 1.85.1 (4eb161250 2025-03-15) (built from a source tarball)"
CONFIG_RUST=y
"""
KEEP = "CONFIG_CC_IS_GCC CONFIG_GCC_VERSION CONFIG_RUSTC_VERSION_TEXT"


def _check(tmp_path: Path, here: str, expect: str = "CONFIG_RUST=y") -> subprocess.CompletedProcess:
    (tmp_path / "debian").write_text(DEBIAN)
    (tmp_path / "here").write_text(here)
    env = {**os.environ, "KMATRIX_PREPARE_EXPECT": expect, "KMATRIX_PREPARE_KEEP": KEEP}
    return subprocess.run(["sh", str(SCRIPT), str(tmp_path / "debian"), str(tmp_path / "here")],
                          env=env, capture_output=True, text=True, check=False)


def test_the_same_toolchain_passes(tmp_path: Path) -> None:
    proc = _check(tmp_path, DEBIAN + "CONFIG_EXTRA=y\n")
    assert proc.returncode == 0 and proc.stderr == ""


def test_another_rustc_is_refused_naming_both(tmp_path: Path) -> None:
    proc = _check(tmp_path, DEBIAN.replace("1.85.1 (4eb161250 2025-03-15)",
                                           "1.89.0 (29483883e 2025-08-04)"))
    assert proc.returncode == 1
    assert ('Debian built this kernel with CONFIG_RUSTC_VERSION_TEXT="rustc 1.85.1'
            in proc.stderr) and 'this image has CONFIG_RUSTC_VERSION_TEXT="rustc 1.89.0' \
        in proc.stderr and "docs/RUST-MODULE.md" in proc.stderr


def test_a_missing_option_and_a_lost_line_are_refused(tmp_path: Path) -> None:
    proc = _check(tmp_path, DEBIAN.replace("CONFIG_CC_IS_GCC=y\n", ""))
    assert proc.returncode == 1 and "this image has CONFIG_CC_IS_GCC unset" in proc.stderr
    proc = _check(tmp_path, DEBIAN.replace("CONFIG_RUST=y\n", "# CONFIG_RUST is not set\n"))
    assert proc.returncode == 1 and "olddefconfig did not give CONFIG_RUST=y" in proc.stderr


def test_the_image_runs_this_script_after_olddefconfig(tmp_path: Path) -> None:
    """The kbuild-rust-debian Dockerfile writes this very script and runs it."""
    catalog = ImageCatalog(ROOT / "pipeline" / "images")
    flavour = catalog.render("kbuild-rust-debian", read_lock(ROOT / "matrix.lock")["7.3"],
                             ImageBase())
    plan = bootstrap_plan(catalog.dockerfile(flavour, ImageBase(), rootfs_tag(flavour)))
    written, prepare = plan.runs[-2], plan.runs[-1]
    target = tmp_path / "check.sh"  # the printf RUN writes the script byte for byte
    command = written.command.replace("/usr/src/kmatrix-config-check.sh", str(target))
    subprocess.run(["sh", "-c", command], check=True)
    assert target.read_text() == SCRIPT.read_text()
    assert ("make -s olddefconfig; sh /usr/src/kmatrix-config-check.sh "
            '"$KMATRIX_PREPARE_FROM/.config" .config;') in " ".join(prepare.command.split())
    assert prepare.env["KMATRIX_PREPARE_KEEP"].split() == [
        "CONFIG_CC_IS_GCC", "CONFIG_GCC_VERSION", "CONFIG_RUSTC_VERSION_TEXT",
        "CONFIG_BINDGEN_VERSION_TEXT"]
    assert prepare.env["KMATRIX_PREPARE_EXPECT"] == "CONFIG_RUST=y"
