"""matrix.lock: each declared kernel resolved to an exact ABI and package versions.

`pipeline lock` resolves kernels that are new or whose declaration changed;
`pipeline lock --update` re-resolves all of them. Runs read the lock, so two runs of
the same commit use the same headers and kernel image. Every pinned package comes with
the SHA256 of the signed chain (pipeline.debian.archive); an entry without one is an error.

A kernel declared with `source: <package>` (e.g. `linux-source-7.3`) is built from that
Debian source package inside its image (flavour kbuild-rust) instead of being installed
from headers + image packages: the lock pins the source package, and the ABI is its
upstream version (the kernel is configured with an empty LOCALVERSION).

A kernel with `snapshot: <timestamp>` (its own or the matrix's) is resolved from
snapshot.debian.org at that date: its `mirror` in the lock is the snapshot's URL, so the
images and the kernel download use exactly that archive.

Cells with `arch: arm64` (matrix.yml `axes:`) use the kernel's packages of that architecture
from the same suites: the lock has an entry `6.12:arm64` beside `6.12`, which also pins the
suite's busybox-static of that architecture (the shell of its VM's initramfs).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from pipeline.debian.archive import (
    ARCH,
    BUSYBOX,
    PACKAGE_PREFIX,
    Fetch,
    PinnedPackage,
    http_fetch,
    parse_packages,
    snapshot_mirror,
)
from pipeline.debian.indexes import Entries, kernel_packages
from pipeline.errors import Diagnostic, InputError, PipelineError
from pipeline.model.kernels import KernelSource, kernel_key
from pipeline.model.yamlmarks import load_yaml_text, mark_of

if TYPE_CHECKING:
    from debian.debian_support import Version

__all__ = ["LOCK_NAME", "Fetch", "LockedKernel", "PinnedPackage", "http_fetch"]

LOCK_NAME = "matrix.lock"
SHA256_RE = re.compile(r"^[0-9a-f]{64}$")


def debian_version(text: str) -> Version:
    """A comparable Debian version (python-debian loads only when a lock is resolved)."""
    from debian.debian_support import Version

    return Version(text)


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
    snapshot: str = ""  # the snapshot.debian.org timestamp `mirror` points at
    arch: str = ARCH  # the Debian architecture of the packages
    busybox: PinnedPackage | None = None  # busybox-static of `arch` (not amd64: the host's)

    @property
    def from_source(self) -> bool:
        """Whether the kernel is built from a source package inside its image."""
        return self.source is not None

    @property
    def key(self) -> str:
        """Its key in matrix.lock: the version, `6.12:arm64` for another architecture."""
        return kernel_key(self.version, self.arch)

    def packages(self) -> tuple[PinnedPackage, ...]:
        """The distinct packages the lock pins for this kernel."""
        return tuple(dict.fromkeys(p for p in (self.headers, self.image, self.source,
                                               self.busybox) if p))

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
        if not self.snapshot:  # and so do entries without a snapshot (cache keys hash them)
            del data["snapshot"]
        if self.arch == ARCH:  # and amd64 entries
            del data["arch"]
        if self.busybox is None:
            del data["busybox"]
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
            snapshot=str(data.get("snapshot") or ""),
            arch=str(data.get("arch") or ARCH),
            busybox=PinnedPackage(**data["busybox"]) if data.get("busybox") else None,
        )


def archive_of(source: KernelSource) -> str:
    """The archive a declared kernel is resolved from: its snapshot, else its mirror."""
    return snapshot_mirror(source.snapshot) if source.snapshot else source.mirror


def _busybox(source: KernelSource, entries: Entries) -> PinnedPackage | None:
    """The newest busybox-static of a kernel of another architecture than amd64."""
    if source.arch == ARCH:
        return None
    if not entries.get(BUSYBOX):
        raise InputError(f"kernel {source.key}: no {BUSYBOX} for {source.arch} in "
                         f"{', '.join(source.sources)} at {archive_of(source)}",
                         hint="its VM tests boot with that busybox")
    return max(entries[BUSYBOX], key=lambda p: debian_version(p.version))


def _locked(source: KernelSource, abi: str, headers: PinnedPackage, image: PinnedPackage,
            from_source: bool = False, busybox: PinnedPackage | None = None) -> LockedKernel:
    for package in (headers, image, *([busybox] if busybox else [])):
        if not SHA256_RE.match(package.sha256):
            raise InputError(
                f"kernel {source.version}: the index has no SHA256 for {package.package} "
                f"{package.version}, so it cannot be pinned",
                hint="kmatrix pins only packages with a SHA256 from a signed index")
    return LockedKernel(
        version=source.version, suite=source.suite, sources=source.sources,
        mirror=archive_of(source), components=source.components, keyring=source.keyring,
        abi=abi, headers=headers, image=image, declaration=source.declaration_hash(),
        source=headers if from_source else None, snapshot=source.snapshot, arch=source.arch,
        busybox=busybox,
    )


def resolve_source_kernel(source: KernelSource, entries: Entries) -> LockedKernel:
    """Pin the newest version of the kernel's source package; the ABI is its upstream part."""
    if source.source not in entries:
        raise InputError(
            f"kernel {source.version}: no package {source.source!r} "
            f"in {', '.join(source.sources)} at {archive_of(source)}",
            hint="check the kernel's suite and its `source` package in matrix.yml "
                 "(e.g. linux-source-7.3 is in trixie-backports)",
        )
    pinned = max(entries[source.source], key=lambda p: debian_version(p.version))
    abi = debian_version(pinned.version).upstream_version or pinned.version
    return _locked(source, abi, pinned, pinned, from_source=True)


def resolve_entries(source: KernelSource, entries: Entries) -> LockedKernel:
    """Pick the newest ABI for which both the headers and the image package exist
    (or, for a kernel built from source, the newest source package)."""
    if source.source:
        if source.arch != ARCH:
            raise InputError(f"kernel {source.version} is built from source for {ARCH} only, "
                             f"not {source.arch}", hint="use a packaged kernel for arch cells")
        return resolve_source_kernel(source, entries)
    regex = source.headers_regex()

    def newest(name: str) -> PinnedPackage:
        return max(entries[name], key=lambda p: debian_version(p.version))

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
        candidates.append((debian_version(headers.version), abi, headers, newest(image_name)))
    if not candidates:
        raise InputError(
            f"kernel {source.version}: no package pair {source.headers!r} + {source.image!r} "
            f"with an ABI matching {source.abi.replace('{version}', source.version)!r} "
            f"in {', '.join(source.sources)} at {archive_of(source)}",
            hint="check the kernel's suite, or its abi/headers/image patterns in matrix.yml",
        )
    _, abi, headers, image = max(candidates, key=lambda c: (c[0], c[1]))
    return _locked(source, abi, headers, image, busybox=_busybox(source, entries))


def resolve_kernel(source: KernelSource, indexes: Iterable[str]) -> LockedKernel:
    """resolve_entries() over the text of Packages files."""
    prefix = PACKAGE_PREFIX if source.arch == ARCH else (PACKAGE_PREFIX, BUSYBOX)
    return resolve_entries(source, merge_entries(parse_packages(t, prefix) for t in indexes))


def merge_entries(parts: Iterable[Entries]) -> Entries:
    """The entries of several indexes (suites, components) as one."""
    merged: Entries = {}
    for part in parts:
        for name, found in part.items():
            merged.setdefault(name, []).extend(found)
    return merged


Memo = dict[tuple[str, str, str, str, str], Entries | PipelineError]  # an index, or why not


def offered_entries(source: KernelSource, fetch: Fetch = http_fetch,
                    max_age: float | None = None, log: Callable[[str], None] = lambda _m: None,
                    memo: Memo | None = None) -> Entries:
    """The kernel packages of every suite and component a kernel declares, each through
    the signed chain (cached: see pipeline.debian.indexes; `memo` shares the indexes
    between the kernels of one command)."""
    archive = archive_of(source)
    memo = {} if memo is None else memo
    parts = []
    for suite in source.sources:
        for component in source.components:
            key = (archive, suite, component, source.keyring, source.arch)
            if key not in memo:
                log(f"fetching the signed index {suite}/{component}"
                    f"{'' if source.arch == ARCH else f' ({source.arch})'} from {archive}")
                memo[key] = kernel_packages(archive, suite, component, source.keyring, fetch,
                                            max_age, source.arch)
            found = memo[key]
            if isinstance(found, PipelineError):
                raise found  # as prefetch() met it: not downloaded twice
            parts.append(found)
    return merge_entries(parts)


def prefetch(sources: Iterable[KernelSource], fetch: Fetch = http_fetch,
             max_age: float | None = None, memo: Memo | None = None) -> Memo:
    """The indexes of all `sources` downloaded at once (a few threads) into `memo`; for one
    that fails, the error, for offered_entries() to raise for its kernels."""
    memo = {} if memo is None else memo
    keys = {(archive_of(s), suite, component, s.keyring, s.arch)
            for s in sources for suite in s.sources for component in s.components}
    keys -= set(memo)

    def get(key: tuple[str, str, str, str, str]) -> None:
        try:
            memo[key] = kernel_packages(*key[:4], fetch=fetch, max_age=max_age, arch=key[4])
        except PipelineError as exc:
            memo[key] = exc

    with ThreadPoolExecutor(max_workers=4) as pool:
        list(pool.map(get, sorted(keys)))
    return memo


def resolve_all(
    sources: Iterable[KernelSource],
    existing: dict[str, LockedKernel],
    update: bool,
    fetch: Fetch = http_fetch,
    log: Callable[[str], None] = lambda _m: None,
) -> dict[str, LockedKernel]:
    """Resolve kernels that are new, changed, or all of them with `update` (from freshly
    downloaded, verified indexes)."""
    result: dict[str, LockedKernel] = {}
    memo: Memo = {}
    for source in sources:
        old = existing.get(source.key)
        if old and not update and old.declaration == source.declaration_hash():
            result[source.key] = old
            continue
        locked = resolve_entries(source, offered_entries(source, fetch, 0, log, memo))
        log(f"kernel {source.key}: {locked.abi} ({locked.headers.version})")
        result[source.key] = locked
    return result


def _hash_problems(path: Path, data: Any) -> list[tuple[str, Diagnostic]]:
    """(kernel, located error) for every pinned package of the lock without a SHA256."""
    problems = []
    for version, entry in (data.get("kernels") or {}).items():
        for part in ("headers", "image", "source", "busybox"):
            pinned = entry.get(part)
            if part in ("source", "busybox") and not pinned:
                continue
            value = pinned.get("sha256") if isinstance(pinned, dict) else None
            if isinstance(value, str) and SHA256_RE.match(value):
                continue
            has = isinstance(pinned, dict) and "sha256" in pinned
            what = f"sha256 {str(value)[:20]!r} is not a SHA256" if value else "has no sha256"
            problems.append((str(version), Diagnostic(
                f"kernels.{version}.{part} in {path.name} {what}",
                mark_of(pinned, "sha256") if has else mark_of(entry, part),
                "every pinned package needs the SHA256 of the signed index; "
                "run `pipeline lock --update`")))
    return problems


def read_lock(path: Path, strict: bool = True) -> dict[str, LockedKernel]:
    """Read matrix.lock (empty when absent). `strict`: a package without a SHA256 is an
    error (file:line:col); otherwise its kernel is left out (to be resolved again)."""
    if not path.exists():
        return {}
    try:
        data = load_yaml_text(path.read_text(), str(path)) or {}
        problems = _hash_problems(path, data)
        if problems and strict:
            raise InputError(diagnostics=[d for _, d in problems])
        unhashed = {version for version, _ in problems}
        return {
            str(k): LockedKernel.from_yaml(v) for k, v in (data.get("kernels") or {}).items()
            if str(k) not in unhashed
        }
    except InputError:
        raise
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
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


def lock_problems(source: KernelSource, locked: dict[str, LockedKernel],
                  lock_path: Path) -> str | None:
    """Why the lock has no current entry for a declared kernel (None when it has)."""
    entry = locked.get(source.key)
    if entry is None:
        return f"kernel {source.key} is not in {lock_path.name}"
    if entry.declaration != source.declaration_hash():
        return f"kernel {source.key} changed in matrix.yml since {lock_path.name} was written"
    return None


def check_lock(
    sources: Iterable[KernelSource], locked: dict[str, LockedKernel], lock_path: Path
) -> dict[str, LockedKernel]:
    """The lock entries for `sources`, or an error saying what to run."""
    sources = list(sources)
    problems = [p for s in sources if (p := lock_problems(s, locked, lock_path))]
    if problems:
        raise InputError(
            "; ".join(problems),
            hint="run `pipeline lock` to resolve it (and commit matrix.lock)",
        )
    return {s.key: locked[s.key] for s in sources}
