"""Bootable kernels for VM tests: the locked linux-image .deb, fetched once and verified.

The .deb must have exactly the SHA256 matrix.lock pins (which `pipeline lock` took from the
signed chain, and the check before every run compares with the suite's signed index
again): a lock entry without one, or other bytes, fail closed (ChainError, exit 2).

A kernel built from source (matrix.lock entry with `source`) has no image package: its
bzImage is in its kbuild-rust image at $KERNEL_IMAGE, and a VM job boots the copy its
build job leaves in $OUT (`vm: {kernel: ...}`).
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import tempfile
from pathlib import Path

from pipeline.debian.archive import ChainError
from pipeline.debian.lock import SHA256_RE, LockedKernel, PinnedPackage
from pipeline.errors import EnvironmentProblem, InputError
from pipeline.paths import cache_dir

VMLINUZ_PATTERNS = ("./boot/vmlinuz-*", "./usr/lib/modules/*/vmlinuz", "./lib/modules/*/vmlinuz")


def _download(url: str, dest: Path, sha256: str) -> None:
    import urllib.error
    import urllib.request

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
    if digest.hexdigest() != sha256:
        tmp.unlink(missing_ok=True)
        raise ChainError(f"{url} does not match matrix.lock (SHA256 {digest.hexdigest()}, "
                         f"the lock pins {sha256})",
                         hint="the mirror or a proxy served other bytes; they were discarded")
    tmp.replace(dest)


def _home(kernel: LockedKernel) -> Path:
    return cache_dir() / "kernels" / kernel.image.sha256[:24]


def cached_kernel_image(kernel: LockedKernel) -> Path | None:
    """The vmlinuz of the locked image package when it is already cached."""
    if kernel.from_source or not SHA256_RE.match(kernel.image.sha256):
        return None
    vmlinuz = _home(kernel) / "vmlinuz"
    return vmlinuz if vmlinuz.is_file() else None


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
    if not SHA256_RE.match(package.sha256):
        raise InputError(f"matrix.lock has no SHA256 for {package.package} {package.version}",
                         hint="run `pipeline lock --update`")
    cached = cached_kernel_image(kernel)
    if cached is not None:
        return cached
    # Debian <= 6.x ships boot/vmlinuz-<abi>; 7.x moved it to usr/lib/modules/<abi>/
    return unpack_one(package, kernel.mirror, _home(kernel), VMLINUZ_PATTERNS, "vmlinuz",
                      what="kernel image", hint="is dpkg-deb installed (Debian's dpkg package)?")


def unpack_one(package: PinnedPackage, mirror: str, home: Path, patterns: tuple[str, ...],
               name: str, what: str, hint: str | None = None) -> Path:
    """Download a pinned .deb (SHA256-checked), unpack the first file matching `patterns`
    to home/name (atomically) and drop the .deb; EnvironmentProblem if none matches."""
    target = home / name
    home.mkdir(parents=True, exist_ok=True)
    deb = home / f"{name}.deb"
    _download(package.url(mirror), deb, package.sha256)
    with tempfile.TemporaryDirectory(dir=home) as tmp:
        quoted = " ".join(f"'{p}'" for p in patterns)
        proc = subprocess.run(
            f"dpkg-deb --fsys-tarfile {deb} | tar -x -C {tmp} --wildcards {quoted}",
            shell=True, capture_output=True, text=True, check=False)
        found = sorted(f for p in patterns for f in Path(tmp).glob(p.lstrip("./"))
                       if f.is_file())
        if not found:
            raise EnvironmentProblem(
                f"no {what} ({', '.join(patterns)}) in {package.package} {package.version}: "
                f"{proc.stderr.strip()[:300]}", hint=hint)
        shutil.move(str(found[0]), target.with_suffix(".tmp"))
        target.with_suffix(".tmp").replace(target)
    deb.unlink()
    return target


BUSYBOX_PATHS = ("./bin/busybox", "./usr/bin/busybox")


def busybox_binary(kernel: LockedKernel) -> Path | None:
    """The static busybox of a kernel of another architecture than the host's: the lock's
    busybox-static of that architecture, downloaded (SHA256-checked) and unpacked (not
    installed) once, cached. None for amd64 kernels: their VMs use the host's /bin/busybox."""
    package = kernel.busybox
    if package is None:
        return None
    if not SHA256_RE.match(package.sha256) or not package.filename:
        raise InputError(f"matrix.lock has no SHA256 or path for {package.package} "
                         f"{package.version} ({kernel.key})", hint="run `pipeline lock --update`")
    home = cache_dir() / "busybox" / package.sha256[:24]
    binary = home / "busybox"
    if binary.is_file():
        return binary
    return unpack_one(package, kernel.mirror, home, BUSYBOX_PATHS, "busybox", what="busybox")
