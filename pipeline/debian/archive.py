"""The signed chain from a Debian suite to a package's SHA256.

`dists/<suite>/InRelease` is verified with gpgv against a keyring (Debian's archive keyring
unless the kernel names its own); the `Packages` index is accepted only when its SHA256 and
size are the ones that verified InRelease lists; each package's SHA256 comes from that
index. Both files are parsed with python-debian. Every link that does not match fails
closed with one line naming it (ChainError, exit 2).
"""

from __future__ import annotations

import hashlib
import lzma
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from pipeline.errors import EnvironmentProblem, InputError

if TYPE_CHECKING:  # python-debian, urllib and email load only when an index is fetched
    from debian.deb822 import Release

ARCH = "amd64"  # the default architecture of an index (kernels for cells' `arch` differ)
DEBIAN_KEYRING = "/usr/share/keyrings/debian-archive-keyring.gpg"
SNAPSHOT_URL = "https://snapshot.debian.org/archive/debian"
SNAPSHOT_ENV = "KMATRIX_SNAPSHOT_URL"  # another snapshot service (tests serve one locally)
SNAPSHOT_PATH_RE = re.compile(r"/[0-9]{8}T[0-9]{6}Z/?$")
PACKAGE_PREFIX = "linux-"  # the only packages a kernel lock looks at
BUSYBOX = "busybox-static"  # also pinned for a kernel of another architecture: its VM's shell

Fetch = Callable[[str], bytes]


class ChainError(EnvironmentProblem):
    """A link of the signed chain (signature, index hash, package hash) did not match."""


@dataclass(frozen=True)
class PinnedPackage:
    """A package name, its exact version, and where the .deb is (for direct download)."""

    package: str
    version: str
    filename: str = ""  # path below the mirror, from the index's Filename field
    sha256: str = ""

    def url(self, mirror: str) -> str:
        """Download URL of the .deb."""
        return f"{mirror.rstrip('/')}/{self.filename}"


def snapshot_mirror(timestamp: str) -> str:
    """The archive URL of a snapshot.debian.org timestamp ($KMATRIX_SNAPSHOT_URL overrides
    the service, e.g. a local copy)."""
    base = os.environ.get(SNAPSHOT_ENV) or SNAPSHOT_URL
    return f"{base.rstrip('/')}/{timestamp}"


def is_snapshot(mirror: str) -> bool:
    """Whether a mirror URL is a snapshot: it ends in a timestamp (a frozen date: its
    indexes may be past their Valid-Until, and it never drops a package)."""
    return bool(SNAPSHOT_PATH_RE.search(mirror))


def keyring_of(keyring: str) -> str:
    """The keyring a kernel's archive is verified with."""
    return keyring or DEBIAN_KEYRING


def http_fetch(url: str, timeout: float = 60) -> bytes:
    """GET a URL; a 404 is FileNotFoundError, other failures environment problems
    (`timeout`: seconds without progress)."""
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.read()
    except urllib.error.HTTPError as exc:
        if exc.code in (404, 410):
            raise FileNotFoundError(f"{url}: HTTP {exc.code}") from None
        raise EnvironmentProblem(f"cannot download {url}: HTTP {exc.code}",
                                 hint="check the kernel's mirror in matrix.yml") from None
    except (urllib.error.URLError, TimeoutError, OSError) as exc:
        raise EnvironmentProblem(
            f"cannot download {url}: {getattr(exc, 'reason', exc)}",
            hint="check the network and the kernel's mirror in matrix.yml",
        ) from None


def _gpgv_reason(status: str, keyring: str) -> str:
    """Why gpgv's status lines do not show a good signature, in words."""
    if match := re.search(r"^\[GNUPG:\] BADSIG (\S+)", status, re.M):
        return f"BAD signature by key {match.group(1)} (the file was changed after signing)"
    if match := re.search(r"^\[GNUPG:\] (EXPKEYSIG|REVKEYSIG) (\S+)", status, re.M):
        what = "an expired" if match.group(1) == "EXPKEYSIG" else "a revoked"
        return f"signed only with {what} key ({match.group(2)})"
    if keys := re.findall(r"^\[GNUPG:\] NO_PUBKEY (\S+)", status, re.M):
        return f"signed by {', '.join(keys)}, none of which is in {keyring}"
    return "not a valid signed file (no signature gpgv could check)"


def verify_inrelease(data: bytes, keyring: str, what: str) -> str:
    """The signed text of an InRelease file, after gpgv verified it against `keyring`
    (only that keyring: gpgv runs with an empty GNUPGHOME)."""
    if not shutil.which("gpgv"):
        raise EnvironmentProblem(f"gpgv is not installed (needed to verify {what})",
                                 hint="run `make setup` (apt-get install gpgv)")
    if not Path(keyring).is_file():
        raise EnvironmentProblem(
            f"keyring {keyring} not found (needed to verify {what})",
            hint="install debian-archive-keyring (`make setup`)" if keyring == DEBIAN_KEYRING
            else "check the kernel's `keyring:` in matrix.yml (an absolute path)")
    with tempfile.TemporaryDirectory(prefix="kmatrix-gpgv-") as home:
        signed, plain = Path(home, "InRelease"), Path(home, "Release")
        signed.write_bytes(data)
        try:
            proc = subprocess.run(
                ["gpgv", "--status-fd", "1", "--keyring", keyring, "--output", str(plain),
                 str(signed)], capture_output=True, text=True, timeout=120, check=False,
                env={**os.environ, "GNUPGHOME": home, "LC_ALL": "C"})
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise EnvironmentProblem(f"gpgv failed to run on {what}: {exc}") from None
        good = re.search(r"^\[GNUPG:\] GOODSIG ", proc.stdout, re.M)
        bad = re.search(r"^\[GNUPG:\] BADSIG ", proc.stdout, re.M)
        if not good or bad or not plain.is_file():
            raise ChainError(f"{what} failed verification: "
                             f"{_gpgv_reason(proc.stdout, keyring)}",
                             hint="nothing was locked or downloaded from it")
        return plain.read_text(encoding="utf-8", errors="replace")


def _check_valid_until(release: Release, url: str) -> None:
    from email.utils import parsedate_to_datetime

    text = release.get("Valid-Until")
    if not text:
        return
    try:
        until = parsedate_to_datetime(text)
    except (TypeError, ValueError):
        raise ChainError(f"{url}: unreadable Valid-Until {text!r}") from None
    if until.tzinfo is None:
        until = until.replace(tzinfo=UTC)
    if until < datetime.now(UTC):
        raise ChainError(f"{url} expired on {text} (Valid-Until): the mirror serves an old "
                         "copy", hint="use another mirror, or pin a snapshot")


def fetch_release(mirror: str, suite: str, keyring: str, fetch: Fetch) -> Release:
    """The suite's InRelease, verified with gpgv and checked to be that suite's."""
    url = f"{mirror.rstrip('/')}/dists/{suite}/InRelease"
    try:
        data = fetch(url)
    except FileNotFoundError:
        raise InputError(f"no signed InRelease at {url}",
                         hint=f"is {suite!r} a suite of {mirror}? (an unsigned Release is "
                              "never used)") from None
    from debian.deb822 import Release

    release = Release(verify_inrelease(data, keyring_of(keyring), url))
    names = {release.get("Suite"), release.get("Codename")}
    if suite not in names:
        raise ChainError(f"{url} is signed for suite {release.get('Suite')!r} (codename "
                         f"{release.get('Codename')!r}), not {suite!r}",
                         hint="the mirror serves another suite's index under this name")
    if not is_snapshot(mirror):
        _check_valid_until(release, url)
    return release


def _gunzip(data: bytes) -> bytes:
    import gzip  # here: only an index download needs it

    return gzip.decompress(data)


DECOMPRESS: tuple[tuple[str, Callable[[bytes], bytes]], ...] = (
    (".xz", lzma.decompress), (".gz", _gunzip), ("", bytes))


def fetch_packages(mirror: str, suite: str, component: str, release: Release,
                   fetch: Fetch, arch: str = ARCH) -> str:
    """The component's Packages index of `arch`, accepted only with the SHA256 and size the
    verified InRelease lists for it."""
    listed = {entry["name"]: entry for entry in release.get("SHA256", [])}
    base = f"{component}/binary-{arch}/Packages"
    for suffix, decompress in DECOMPRESS:
        entry = listed.get(base + suffix)
        if entry is None:
            continue
        url = f"{mirror.rstrip('/')}/dists/{suite}/{base}{suffix}"
        try:
            data = fetch(url)
        except FileNotFoundError:
            continue
        digest = hashlib.sha256(data).hexdigest()
        if digest != entry["sha256"] or len(data) != int(entry["size"]):
            raise ChainError(
                f"{url} does not match the signed InRelease of {suite} (SHA256 "
                f"{digest[:16]}..., {len(data)} bytes; InRelease lists {entry['sha256'][:16]}"
                f"..., {entry['size']} bytes)",
                hint="the mirror or a proxy serves a modified or partial index; nothing "
                     "was locked from it")
        try:
            return decompress(data).decode("utf-8", "replace")
        except (lzma.LZMAError, OSError, EOFError) as exc:
            raise ChainError(f"{url}: cannot decompress ({exc})") from None
    raise InputError(f"the signed InRelease of {suite} at {mirror} lists no {base}(.xz|.gz) "
                     "that the mirror serves",
                     hint=f"is {component!r} a component of {suite!r}?")


def parse_packages(index_text: str, prefix: str | tuple[str, ...] = PACKAGE_PREFIX
                   ) -> dict[str, list[PinnedPackage]]:
    """The entries of the packages whose names start with `prefix` (or one of them), from a
    Packages file (only their paragraphs are parsed: python-debian on all of bookworm takes
    15 s)."""
    from debian.deb822 import Packages

    heads = [f"Package: {p}" for p in ((prefix,) if isinstance(prefix, str) else prefix)]
    wanted = "\n\n".join(p for p in index_text.split("\n\n") if any(
        p.lstrip("\n").startswith(head) or f"\n{head}" in p for head in heads))
    found: dict[str, list[PinnedPackage]] = {}
    for para in Packages.iter_paragraphs(wanted, use_apt_pkg=False):
        name, version = para.get("Package", ""), para.get("Version", "")
        if name.startswith(prefix) and version:
            found.setdefault(name, []).append(PinnedPackage(
                name, version, para.get("Filename", ""), para.get("SHA256", "")))
    return found


def suite_packages(mirror: str, suite: str, component: str, keyring: str,
                   fetch: Fetch = http_fetch, arch: str = ARCH) -> dict[str, list[PinnedPackage]]:
    """The kernel packages a suite's component offers for `arch` (for an architecture other
    than amd64 also busybox-static), through the whole signed chain."""
    release = fetch_release(mirror, suite, keyring, fetch)
    prefix = PACKAGE_PREFIX if arch == ARCH else (PACKAGE_PREFIX, BUSYBOX)
    return parse_packages(fetch_packages(mirror, suite, component, release, fetch, arch),
                          prefix)
