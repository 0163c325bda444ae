"""Bootable kernels for VM tests: the locked linux-image .deb, fetched once and verified.

A kernel built from source (matrix.lock entry with `source`) has no image package: its
bzImage is in its kbuild-rust image at $KERNEL_IMAGE, and a VM job boots the copy its
build job leaves in $OUT (`vm: {kernel: ...}`).
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

from pipeline.debian.lock import LockedKernel
from pipeline.errors import EnvironmentProblem
from pipeline.paths import cache_dir

VMLINUZ_PATTERNS = ("./boot/vmlinuz-*", "./usr/lib/modules/*/vmlinuz", "./lib/modules/*/vmlinuz")


def _download(url: str, dest: Path, sha256: str) -> None:
    digest = hashlib.sha256()
    tmp = dest.with_suffix(".part")
    try:
        with urllib.request.urlopen(url, timeout=120) as response, open(tmp, "wb") as out:
            while chunk := response.read(1 << 20):
                digest.update(chunk)
                out.write(chunk)
    except (urllib.error.URLError, TimeoutError, OSError) as exc:
        tmp.unlink(missing_ok=True)
        raise EnvironmentProblem(
            f"cannot download {url}: {getattr(exc, 'reason', exc)}",
            hint="check the network; if the mirror dropped this version, run "
                 "`pipeline lock --update`") from None
    if sha256 and digest.hexdigest() != sha256:
        tmp.unlink(missing_ok=True)
        raise EnvironmentProblem(f"{url}: SHA256 mismatch (expected {sha256}, got "
                                 f"{digest.hexdigest()})", hint="run `pipeline lock --update`")
    tmp.replace(dest)


def kernel_image(kernel: LockedKernel) -> Path:
    """The vmlinuz of the locked image package (downloaded and extracted once, cached)."""
    if kernel.from_source:
        source = kernel.source.package if kernel.source else "its source package"
        raise EnvironmentProblem(
            f"kernel {kernel.version} is built from {source} inside its image; "
            "there is no kernel package to boot",
            hint="give the VM job `vm: {kernel: $NEEDS/<build job>/$KERNEL/bzImage}`, "
                 "where the build job (image kbuild-rust) copies $KERNEL_IMAGE to $OUT")
    package = kernel.image
    if not package.filename:
        raise EnvironmentProblem(
            f"matrix.lock has no download path for {package.package}",
            hint="run `pipeline lock --update` (older locks lack it)")
    key = package.sha256 or hashlib.sha256(package.url(kernel.mirror).encode()).hexdigest()
    home = cache_dir() / "kernels" / key[:24]
    vmlinuz = home / "vmlinuz"
    if vmlinuz.is_file():
        return vmlinuz
    home.mkdir(parents=True, exist_ok=True)
    deb = home / "image.deb"
    _download(package.url(kernel.mirror), deb, package.sha256)
    with tempfile.TemporaryDirectory(dir=home) as tmp:
        # Debian <= 6.x ships boot/vmlinuz-<abi>; 7.x moved it to usr/lib/modules/<abi>/
        patterns = " ".join(f"'{p}'" for p in VMLINUZ_PATTERNS)
        proc = subprocess.run(
            f"dpkg-deb --fsys-tarfile {deb} | tar -x -C {tmp} --wildcards {patterns}",
            shell=True, capture_output=True, text=True, check=False)
        found = sorted(f for p in VMLINUZ_PATTERNS for f in Path(tmp).glob(p.lstrip("./")))
        if not found:
            raise EnvironmentProblem(
                f"no kernel image ({', '.join(VMLINUZ_PATTERNS)}) in {package.package} "
                f"{package.version}: "
                f"{proc.stderr.strip()[:300]}",
                hint="is dpkg-deb installed (Debian's dpkg package)?")
        shutil.move(str(found[0]), vmlinuz.with_suffix(".tmp"))
        vmlinuz.with_suffix(".tmp").replace(vmlinuz)
    deb.unlink()
    return vmlinuz
