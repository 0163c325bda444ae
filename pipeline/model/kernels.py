"""A declared kernel: where it comes from (the part of matrix.yml the lock depends on)."""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class KernelSource:
    """Where a declared kernel comes from (the part of matrix.yml the lock depends on)."""

    version: str
    suite: str
    sources: tuple[str, ...]
    mirror: str = "http://deb.debian.org/debian"
    components: tuple[str, ...] = ("main",)
    keyring: str = ""
    abi: str = r"{version}(?:\.[0-9]+)*(?:-[0-9]+|\+deb[0-9]+)-amd64"
    headers: str = "linux-headers-{abi}"
    image: str = "linux-image-{abi}-unsigned|linux-binary-{abi}|linux-image-{abi}"  # first wins
    source: str = ""  # a linux-source package: the kernel is built from it, not installed

    def declaration_hash(self) -> str:
        """Hash of the declaration; a lock entry is stale when it differs."""
        data = asdict(self)
        if not self.source:  # kernels without `source` hash as they did before it existed
            del data["source"]
        blob = json.dumps(data, sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:16]

    def headers_regex(self) -> re.Pattern[str]:
        """Regex matching header package names, capturing the ABI."""
        abi = self.abi.replace("{version}", re.escape(self.version))
        abi_group = f"(?P<abi>{abi})"
        parts = self.headers.split("{abi}")
        return re.compile("^" + abi_group.join(re.escape(p) for p in parts) + "$")
