"""A declared kernel: where it comes from (the part of matrix.yml the lock depends on)."""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import asdict, dataclass
from datetime import UTC, datetime

SNAPSHOT_FORMAT = "%Y%m%dT%H%M%SZ"
NATIVE_ARCH = "amd64"  # the architecture of a kernel declaration; cells may ask for others
DEFAULT_ABI = r"{version}(?:\.[0-9]+)*(?:-[0-9]+|\+deb[0-9]+)-amd64"


def kernel_key(version: str, arch: str = NATIVE_ARCH) -> str:
    """A kernel's matrix.lock key: its version, `6.12:arm64` for another architecture."""
    return version if arch == NATIVE_ARCH else f"{version}:{arch}"
SNAPSHOT_RE = re.compile(r"^[0-9]{8}T[0-9]{6}Z$")


def snapshot_problem(timestamp: str) -> str | None:
    """Why `timestamp` is not a snapshot.debian.org timestamp (None when it is one)."""
    if not SNAPSHOT_RE.match(timestamp):
        return "is not a snapshot timestamp"
    try:
        when = datetime.strptime(timestamp, SNAPSHOT_FORMAT)
    except ValueError:
        return "is not a real date and time"
    if when.year < 2005:
        return "is before snapshot.debian.org's first snapshot (2005)"
    if when > datetime.now(UTC).replace(tzinfo=None):
        return "is in the future (the snapshot service would serve whatever is newest)"
    return None


@dataclass(frozen=True)
class KernelSource:
    """Where a declared kernel comes from (the part of matrix.yml the lock depends on)."""

    version: str
    suite: str
    sources: tuple[str, ...]
    mirror: str = "http://deb.debian.org/debian"
    components: tuple[str, ...] = ("main",)
    keyring: str = ""
    abi: str = DEFAULT_ABI
    headers: str = "linux-headers-{abi}"
    image: str = "linux-image-{abi}-unsigned|linux-binary-{abi}|linux-image-{abi}"  # first wins
    source: str = ""  # a linux-source package: the kernel is built from it, not installed
    snapshot: str = ""  # a snapshot.debian.org timestamp (YYYYMMDDThhmmssZ) to resolve at
    arch: str = NATIVE_ARCH  # Debian architecture of the packages (cells with `arch: arm64`)

    @property
    def key(self) -> str:
        """Its matrix.lock key (see kernel_key)."""
        return kernel_key(self.version, self.arch)

    def declaration_hash(self) -> str:
        """Hash of the declaration; a lock entry is stale when it differs."""
        data = asdict(self)
        if not self.source:  # kernels without `source` hash as they did before it existed
            del data["source"]
        if not self.snapshot:  # likewise without `snapshot`
            del data["snapshot"]
        if self.arch == NATIVE_ARCH:  # and amd64 kernels, as before other architectures
            del data["arch"]
        blob = json.dumps(data, sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:16]

    def headers_regex(self) -> re.Pattern[str]:
        """Regex matching header package names, capturing the ABI."""
        abi = self.abi
        if self.arch != NATIVE_ARCH and abi == DEFAULT_ABI:  # the default names amd64
            abi = abi[:-len(NATIVE_ARCH)] + "{arch}"
        abi = abi.replace("{version}", re.escape(self.version)).replace(
            "{arch}", re.escape(self.arch))
        abi_group = f"(?P<abi>{abi})"
        parts = self.headers.split("{abi}")
        return re.compile("^" + abi_group.join(re.escape(p) for p in parts) + "$")
