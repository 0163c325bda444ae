"""matrix.lock: each declared kernel resolved to an exact ABI and package versions.

`pipeline lock` resolves kernels that are new or whose declaration changed;
`pipeline lock --update` re-resolves all of them. Runs read the lock, so two runs of
the same commit use the same headers and kernel image.

A kernel declared with `source: <package>` (e.g. `linux-source-7.3`) is built from that
Debian source package inside its image (flavour kbuild-rust) instead of being installed
from headers + image packages: the lock pins the source package, and the ABI is its
upstream version (the kernel is configured with an empty LOCALVERSION).
"""

from __future__ import annotations

import gzip
import lzma
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import yaml
from debian.debian_support import Version

from pipeline.errors import EnvironmentProblem, InputError
from pipeline.model.kernels import KernelSource

LOCK_NAME = "matrix.lock"
ARCH = "amd64"


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


@dataclass(frozen=True)
class LockedKernel:
    """A kernel resolved to exact packages.

    For a kernel built from source (`source` set), `headers` and `image` are that same
    source package: both the build tree and the bootable image come out of it.
    """

    version: str
    suite: str
    sources: tuple[str, ...]
    mirror: str
    components: tuple[str, ...]
    keyring: str
    abi: str
    headers: PinnedPackage
    image: PinnedPackage
    declaration: str
    source: PinnedPackage | None = None

    @property
    def from_source(self) -> bool:
        """Whether the kernel is built from a source package inside its image."""
        return self.source is not None

    def template_context(self) -> dict[str, Any]:
        """Values image templates may use (lists joined as words)."""
        ctx = asdict(self)
        ctx["sources"] = " ".join(self.sources)
        ctx["components"] = " ".join(self.components)
        return ctx

    def to_yaml(self) -> dict[str, Any]:
        data = asdict(self)
        data["sources"] = list(self.sources)
        data["components"] = list(self.components)
        if self.source is None:  # entries of packaged kernels stay as they were
            del data["source"]
        return data

    @classmethod
    def from_yaml(cls, data: dict[str, Any]) -> LockedKernel:
        return cls(
            version=str(data["version"]),
            suite=str(data["suite"]),
            sources=tuple(data["sources"]),
            mirror=str(data["mirror"]),
            components=tuple(data["components"]),
            keyring=str(data.get("keyring", "")),
            abi=str(data["abi"]),
            headers=PinnedPackage(**data["headers"]),
            image=PinnedPackage(**data["image"]),
            declaration=str(data["declaration"]),
            source=PinnedPackage(**data["source"]) if data.get("source") else None,
        )


Fetch = Callable[[str], bytes]


def http_fetch(url: str) -> bytes:
    """GET a URL (the package index); failures are environment problems."""
    try:
        with urllib.request.urlopen(url, timeout=60) as response:
            return response.read()
    except urllib.error.HTTPError as exc:
        raise FileNotFoundError(f"{url}: HTTP {exc.code}") from None
    except (urllib.error.URLError, TimeoutError, OSError) as exc:
        raise EnvironmentProblem(
            f"cannot download {url}: {getattr(exc, 'reason', exc)}",
            hint="check the network and the kernel's mirror in matrix.yml",
        ) from None


def fetch_index(mirror: str, suite: str, component: str, fetch: Fetch) -> str:
    """Download and decompress one Packages index (xz, else gz)."""
    base = f"{mirror.rstrip('/')}/dists/{suite}/{component}/binary-{ARCH}/Packages"
    for suffix, decompress in ((".xz", lzma.decompress), (".gz", gzip.decompress)):
        try:
            return decompress(fetch(base + suffix)).decode("utf-8", "replace")
        except FileNotFoundError:
            continue
    raise InputError(
        f"no package index at {base}.xz or .gz",
        hint=f"is {suite!r} a suite of {mirror}?",
    )


def scan_packages(index_text: str,
                  wanted: Callable[[str], bool]) -> dict[str, list[PinnedPackage]]:
    """The entries of the packages whose names pass `wanted`, from a Packages file."""
    found: dict[str, list[PinnedPackage]] = {}
    fields: dict[str, str] = {}

    def flush() -> None:
        if "Package" in fields and "Version" in fields:
            name = fields["Package"]
            found.setdefault(name, []).append(PinnedPackage(
                name, fields["Version"], fields.get("Filename", ""), fields.get("SHA256", "")))
        fields.clear()

    keep = False
    for line in index_text.splitlines():
        if not line:
            flush()
            keep = False
        elif line.startswith("Package: "):
            flush()
            keep = wanted(line[9:].strip())
            if keep:
                fields["Package"] = line[9:].strip()
        elif keep and line[:1] != " " and ": " in line:
            key, _, value = line.partition(": ")
            if key in ("Version", "Filename", "SHA256"):
                fields[key] = value.strip()
    flush()
    return found


def resolve_source_kernel(source: KernelSource,
                          entries: dict[str, list[PinnedPackage]]) -> LockedKernel:
    """Pin the newest version of the kernel's source package; the ABI is its upstream part."""
    if source.source not in entries:
        raise InputError(
            f"kernel {source.version}: no package {source.source!r} "
            f"in {', '.join(source.sources)} at {source.mirror}",
            hint="check the kernel's suite and its `source` package in matrix.yml "
                 "(e.g. linux-source-7.3 is in trixie-backports)",
        )
    pinned = max(entries[source.source], key=lambda p: Version(p.version))
    abi = Version(pinned.version).upstream_version or pinned.version
    return LockedKernel(
        version=source.version, suite=source.suite, sources=source.sources,
        mirror=source.mirror, components=source.components, keyring=source.keyring,
        abi=abi, headers=pinned, image=pinned, declaration=source.declaration_hash(),
        source=pinned,
    )


def resolve_kernel(source: KernelSource, indexes: Iterable[str]) -> LockedKernel:
    """Pick the newest ABI for which both the headers and the image package exist
    (or, for a kernel built from source, the newest source package)."""
    regex = source.headers_regex()
    entries: dict[str, list[PinnedPackage]] = {}
    for text in indexes:
        for name, found in scan_packages(text, lambda n: n.startswith("linux-")).items():
            entries.setdefault(name, []).extend(found)
    if source.source:
        return resolve_source_kernel(source, entries)

    def newest(name: str) -> PinnedPackage:
        return max(entries[name], key=lambda p: Version(p.version))

    candidates: list[tuple[Version, str, PinnedPackage, PinnedPackage]] = []
    for name in entries:
        match = regex.match(name)
        if not match:
            continue
        abi = match.group("abi")
        image_name = next((alt.format(abi=abi) for alt in source.image.split("|")
                           if alt.format(abi=abi) in entries), None)
        if image_name is None:
            continue
        headers = newest(name)
        candidates.append((Version(headers.version), abi, headers, newest(image_name)))
    if not candidates:
        raise InputError(
            f"kernel {source.version}: no package pair {source.headers!r} + {source.image!r} "
            f"with an ABI matching {source.abi.replace('{version}', source.version)!r} "
            f"in {', '.join(source.sources)} at {source.mirror}",
            hint="check the kernel's suite, or its abi/headers/image patterns in matrix.yml",
        )
    _, abi, headers, image = max(candidates, key=lambda c: (c[0], c[1]))
    return LockedKernel(
        version=source.version, suite=source.suite, sources=source.sources,
        mirror=source.mirror, components=source.components, keyring=source.keyring,
        abi=abi, headers=headers, image=image, declaration=source.declaration_hash(),
    )


def resolve_all(
    sources: Iterable[KernelSource],
    existing: dict[str, LockedKernel],
    update: bool,
    fetch: Fetch = http_fetch,
    log: Callable[[str], None] = lambda _m: None,
) -> dict[str, LockedKernel]:
    """Resolve kernels that are new, changed, or all of them with `update`."""
    cache: dict[tuple[str, str, str], str] = {}
    result: dict[str, LockedKernel] = {}
    for source in sources:
        old = existing.get(source.version)
        if old and not update and old.declaration == source.declaration_hash():
            result[source.version] = old
            continue
        texts = []
        for suite in source.sources:
            for component in source.components:
                key = (source.mirror, suite, component)
                if key not in cache:
                    log(f"fetching package index {suite}/{component} from {source.mirror}")
                    cache[key] = fetch_index(source.mirror, suite, component, fetch)
                texts.append(cache[key])
        locked = resolve_kernel(source, texts)
        log(f"kernel {source.version}: {locked.abi} ({locked.headers.version})")
        result[source.version] = locked
    return result


def read_lock(path: Path) -> dict[str, LockedKernel]:
    """Read matrix.lock (empty when absent)."""
    if not path.exists():
        return {}
    try:
        data = yaml.safe_load(path.read_text()) or {}
        return {
            str(k): LockedKernel.from_yaml(v) for k, v in (data.get("kernels") or {}).items()
        }
    except (yaml.YAMLError, KeyError, TypeError, AttributeError) as exc:
        raise InputError(
            f"{path}: unreadable lock file ({exc.__class__.__name__}: {exc})",
            hint="regenerate it with `pipeline lock --update`",
        ) from None


def write_lock(path: Path, kernels: dict[str, LockedKernel]) -> None:
    """Write matrix.lock atomically."""
    header = (
        "# Generated by `pipeline lock` from matrix.yml's kernels; commit it.\n"
        "# `pipeline lock --update` moves every kernel to the newest ABI its suite offers.\n"
    )
    body = yaml.safe_dump(
        {"version": 1, "kernels": {k: v.to_yaml() for k, v in sorted(kernels.items())}},
        sort_keys=False,
    )
    tmp = path.with_suffix(".lock.tmp")
    tmp.write_text(header + body)
    tmp.replace(path)


def check_lock(
    sources: Iterable[KernelSource], locked: dict[str, LockedKernel], lock_path: Path
) -> dict[str, LockedKernel]:
    """The lock entries for `sources`, or an error saying what to run."""
    problems = []
    for source in sources:
        entry = locked.get(source.version)
        if entry is None:
            problems.append(f"kernel {source.version} is not in {lock_path.name}")
        elif entry.declaration != source.declaration_hash():
            problems.append(
                f"kernel {source.version} changed in matrix.yml since {lock_path.name} was written"
            )
    if problems:
        raise InputError(
            "; ".join(problems),
            hint="run `pipeline lock` to resolve it (and commit matrix.lock)",
        )
    return {s.version: locked[s.version] for s in sources}
