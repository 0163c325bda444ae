"""Images without a registry: mmdebstrap bootstraps the rootfs, carries out the flavour's
Dockerfile in it (pipeline.debian.dockerfile) and the tarball is `docker import`ed with the
Dockerfile's settings. No `docker build`, no intermediate image.

Where the chroot is unpacked matters more than anything else on a small machine: on an
ext4 mounted with `discard` dpkg's writes and the final removal of the chroot cost minutes,
on tmpfs seconds. /dev/shm is used when the machine has memory to spare (see
bootstrap_tmpdir); KMATRIX_BOOTSTRAP_TMPDIR names another directory.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipeline.debian.archive import is_snapshot
from pipeline.debian.dockerfile import BootstrapPlan, bootstrap_plan
from pipeline.errors import EnvironmentProblem, ImageBuildError

if TYPE_CHECKING:
    from pipeline.debian.images import Flavour

TMPDIR_VAR = "KMATRIX_BOOTSTRAP_TMPDIR"
SHM = Path("/dev/shm")
MIN_SHM_BYTES = 12 << 30  # the kbuild-rust chroot peaks at ~5.5 GB (rootfs, .debs, kernel)
LOG_TAIL_LINES = 30
FAILED = "kmatrix: the RUN at Dockerfile line"

SYNC_OUT = (
    # copy new .debs into the shared cache atomically (tmp + mv) under a lock, so parallel
    # bootstraps can read the cache while another one adds to it
    'flock {cache}/.lock sh -c \'for f in "$1"/var/cache/apt/archives/*.deb; do '
    'b=$(basename "$f"); [ -e "{cache}/$b" ] || '
    '{{ cp "$f" "{cache}/.$b.tmp" && mv "{cache}/.$b.tmp" "{cache}/$b"; }}; done\' sh "$1"'
)

EXTRACT = ('chroot "$1" sh -ec \'cd /tmp; apt-get download -o APT::Sandbox::User=root '
           '{packages}; for deb in ./*.deb; do dpkg-deb -x "$deb" /; done; rm -f ./*.deb\'')


def _mem_available() -> int:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return 0


def bootstrap_tmpdir() -> Path | None:
    """Where mmdebstrap unpacks the chroot: $KMATRIX_BOOTSTRAP_TMPDIR; else /dev/shm when
    both it and the machine's available memory have MIN_SHM_BYTES to spare; else None
    (mmdebstrap's default, $TMPDIR or /tmp)."""
    explicit = os.environ.get(TMPDIR_VAR)
    if explicit:
        return Path(explicit)
    try:
        usage = shutil.disk_usage(SHM)
    except OSError:
        return None
    if usage.free >= MIN_SHM_BYTES and _mem_available() >= MIN_SHM_BYTES \
            and os.access(SHM, os.W_OK):
        return SHM
    return None


def apt_cache_hook(apt_cache: Path, chroot_parent: Path) -> str:
    """Setup hook putting the shared .debs into the chroot's apt archive: hard links when
    the chroot is on the cache's filesystem, else copies (about a second per GB on tmpfs;
    mmdebstrap's sync-in pipes them through tar, ~10x slower)."""
    try:
        same = apt_cache.stat().st_dev == chroot_parent.stat().st_dev
    except OSError:
        same = False
    return (f"--setup-hook=cp -R{'l' if same else ''} {shlex.quote(str(apt_cache))}/. "
            '"$1"/var/cache/apt/archives/')


def run_hooks(plan: BootstrapPlan, scripts: Path) -> list[str]:
    """Customize hooks carrying out the Dockerfile's RUN steps in the chroot, in order, as
    `docker build` would: `/bin/sh` in WORKDIR, as USER, with only the ENV set so far."""
    hooks: list[str] = []
    for index, run in enumerate(plan.runs):
        script = scripts / f"run-{index}.sh"
        script.write_text(run.command + "\n")
        inside = f"/tmp/kmatrix-run-{index}.sh"
        env = " ".join(shlex.quote(f"{k}={v}") for k, v in run.env.items())
        user = "" if run.user in ("0", "0:0", "root") else \
            f" --userspec={shlex.quote(run.user)}"
        shell = shlex.quote(f"cd {shlex.quote(run.workdir)} && exec /bin/sh {inside}")
        hooks += [f'--customize-hook=cp {shlex.quote(str(script))} "$1"{inside}',
                  f'--customize-hook=mkdir -p "$1"{shlex.quote(run.workdir)} && '
                  f'chroot{user} "$1" /usr/bin/env -i {env} /bin/sh -c {shell}; '
                  f'status=$?; rm -f "$1"{inside}; [ $status -eq 0 ] || echo "{FAILED} '
                  f'{run.line} exited $status" >&2; exit $status']
    return hooks


def mmdebstrap_command(flavour: Flavour, target: Path, apt_cache: Path,
                       hooks: list[str] | None = None, chroot_parent: Path | None = None
                       ) -> list[str]:
    """The mmdebstrap command line that writes the flavour's rootfs tarball; `hooks` (the
    Dockerfile's RUN steps) run last, in the finished rootfs."""
    cmd = [
        "mmdebstrap",
        "--variant=apt",
        "--mode=root" if os.geteuid() == 0 else "--mode=unshare",
        f"--include={','.join(flavour.packages)}",
        "--skip=essential/unlink",
        "--setup-hook=mkdir -p \"$1\"/var/cache/apt/archives/",
        apt_cache_hook(apt_cache, chroot_parent or Path(tempfile.gettempdir())),
        "--customize-hook=" + SYNC_OUT.format(cache=apt_cache),
        "--aptopt=Acquire::Retries \"3\"",
    ]
    if flavour.architectures:
        cmd.append(f"--architectures={','.join(('amd64', *flavour.architectures))}")
    if flavour.extract:  # unpacked, not installed: their dependencies are not wanted
        cmd.append("--customize-hook=" + EXTRACT.format(packages=" ".join(flavour.extract)))
    cmd += hooks or []
    if flavour.keyring:
        cmd.append(f"--keyring={flavour.keyring}")
    if is_snapshot(flavour.mirror):  # a snapshot's indexes outlive their Valid-Until
        cmd.append('--aptopt=Acquire::Check-Valid-Until "false"')
    components = " ".join(flavour.components)
    cmd += [flavour.suite, str(target)]
    cmd += [f"deb {flavour.mirror} {suite} {components}" for suite in flavour.sources]
    return cmd


def tail(text: str, lines: int = LOG_TAIL_LINES) -> str:
    """The last lines of a build's output, for an error message."""
    return "\n".join(text.rstrip().splitlines()[-lines:])


def safe_name(tag: str) -> str:
    """An image tag as a file name (locks, logs)."""
    return tag.replace("/", "_").replace(":", "_")


def bootstrap_image(flavour: Flavour, dockerfile: str, tag: str, client: Any, cache: Path,
                    log: Callable[[str], None]) -> None:
    """Bootstrap the rootfs, carry out `dockerfile` in it and import it as `tag`."""
    if not shutil.which("mmdebstrap"):
        raise EnvironmentProblem(
            "mmdebstrap is not installed (needed to build images without a registry)",
            hint="run `make setup` (apt-get install mmdebstrap), "
            "or set KMATRIX_IMAGE_BASE=registry on a machine with a registry")
    plan = bootstrap_plan(dockerfile)
    apt_cache = cache / "apt-archives"
    apt_cache.mkdir(parents=True, exist_ok=True)
    chroot_parent = bootstrap_tmpdir()
    work = Path(tempfile.mkdtemp(prefix="rootfs-", dir=cache))
    try:
        tarball = work / "rootfs.tar"
        cmd = mmdebstrap_command(flavour, tarball, apt_cache, run_hooks(plan, work),
                                 chroot_parent)
        steps = f", then {len(plan.runs)} RUN step(s)" if plan.runs else ""
        log(f"bootstrapping image {tag} ({flavour.suite}: {' '.join(flavour.packages)}"
            f"{steps})")
        env = {**os.environ, "SOURCE_DATE_EPOCH": "1700000000"}
        if chroot_parent is not None:
            env["TMPDIR"] = str(chroot_parent)
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False, env=env)
        (cache / "logs").mkdir(exist_ok=True)
        log_path = cache / "logs" / f"{safe_name(tag)}.mmdebstrap.log"
        log_path.write_text(proc.stdout + proc.stderr)
        if proc.returncode != 0:
            output = proc.stderr or proc.stdout
            failed = [line for line in output.splitlines() if line.startswith(FAILED)]
            what = (failed[-1].removeprefix("kmatrix: ") + f" while bootstrapping {tag}"
                    if failed else f"mmdebstrap failed for image flavour {flavour.name!r} "
                    f"(suite {flavour.suite}, exit {proc.returncode})")
            raise ImageBuildError(f"{what}; last lines:\n{tail(output)}",
                                  hint=f"full log: {log_path}")
        repo, _, version = tag.partition(":")
        client.api.import_image_from_file(
            str(tarball), repository=repo, tag=version,
            changes=[*plan.changes, f"LABEL org.kmatrix.tag={tag}"])
    finally:
        shutil.rmtree(work, ignore_errors=True)
