"""Content-addressed job results: a job whose key has a stored, passed result is not re-run.

Key (KeyComputer): sha256 over the job's resolved definition (id, axes, env, steps or vm
spec, timeout, limits, flavour caches), kmatrix's own code as installed (every file of the
`pipeline` package, package_digest()), what it runs on (container jobs: the image tag,
itself a content hash of the rendered flavour, plus the local image id; VM jobs: the
locked kernel image package with its sha256, the QEMU version, the busybox binary, the
init template and any host file its `vm:` names outside $SRC and $NEEDS), the content of
its inputs (changes.in_inputs: the project files its `inputs` globs match, or every
project file but reports/ for a job without inputs; exactly what the job sees at /src) and
the keys of its needs. Project files are the git-tracked and untracked-not-ignored ones (a
walk skipping .git, reports, target, ... outside git).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import stat
import string
import subprocess
import threading
from collections.abc import Callable, Iterable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pipeline
from pipeline import __version__
from pipeline.debian.lock import LockedKernel
from pipeline.fsutil import atomic_write_text, file_sha256
from pipeline.model.expand import Job
from pipeline.paths import cache_dir
from pipeline.plan.changes import in_inputs

CACHE_FORMAT = "1"  # bump to invalidate every stored result
# Files of the package that are not its code or data: byte-code caches, editor droppings.
NOT_PACKAGE = ("__pycache__",)
_TOOL_DIGEST: str | None = None
_TOOL_LOCK = threading.Lock()


def package_files(package: Path) -> list[Path]:
    """Every file of a package directory (code, templates, recipes, schemas...), sorted by
    relative path; byte-code caches and hidden or backup files are left out."""
    found = []
    for directory, dirs, files in os.walk(package):
        dirs[:] = sorted(d for d in dirs if d not in NOT_PACKAGE and not d.startswith("."))
        found += [Path(directory, f) for f in files
                  if not f.startswith(".") and not f.endswith((".pyc", ".pyo", "~"))]
    return sorted(found, key=lambda p: p.relative_to(package).as_posix())


def package_digest(package: Path) -> str:
    """sha256 (16 hex digits) of a package directory: each file's relative path and content."""
    digest = hashlib.sha256()
    for path in package_files(package):
        digest.update(path.relative_to(package).as_posix().encode() + b"\0")
        digest.update(file_sha256(path).encode() + b"\0")
    return digest.hexdigest()[:16]


def tool_digest() -> str:
    """The digest of kmatrix as installed (every file of the `pipeline` package), computed
    once per process: any change to its code or data invalidates every stored result."""
    global _TOOL_DIGEST
    with _TOOL_LOCK:
        if _TOOL_DIGEST is None:
            _TOOL_DIGEST = _remembered_digest(Path(pipeline.__file__).resolve().parent)
        return _TOOL_DIGEST


def _remembered_digest(package: Path) -> str:
    """package_digest(), kept in the cache directory with the files' inode, size, mtime and
    ctime: while none of them changed (any write changes ctime), the files are not read
    again. A memo that cannot be read or written is only a slower start."""
    stats = []
    for directory, dirs, files in os.walk(package):  # package_files(), without pathlib
        dirs[:] = sorted(d for d in dirs if d not in NOT_PACKAGE and not d.startswith("."))
        for name in sorted(files):
            if not name.startswith(".") and not name.endswith((".pyc", ".pyo", "~")):
                st = os.stat(os.path.join(directory, name))
                stats.append([directory, name, st.st_ino, st.st_size, st.st_mtime_ns,
                              st.st_ctime_ns])
    signature = sha256_json([str(package), CACHE_FORMAT, stats])
    try:  # one memo per installed package
        memo: Path | None = cache_dir() / "code-digest" / f"{sha256_json(str(package))[:16]}"
    except OSError:
        memo = None
    with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
        known = json.loads(memo.read_text()) if memo is not None else {}
        if known["signature"] == signature:
            return str(known["digest"])
    digest = package_digest(package)
    with contextlib.suppress(OSError):
        if memo is not None:
            memo.parent.mkdir(exist_ok=True)
            atomic_write_text(memo, json.dumps({"signature": signature, "digest": digest}))
    return digest


WALK_SKIP = {".git", ".buildbot", ".venv", "reports", "target", "__pycache__", ".pytest_cache"}


def sha256_json(data: Any) -> str:
    blob = json.dumps(data, sort_keys=True, separators=(",", ":"), default=str).encode()
    return hashlib.sha256(blob).hexdigest()


# --------------------------------------------------------------------------- keys


class SourceTree:
    """The project's files and their content digests (memoised for one process)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._files: list[str] | None = None
        self._file_digest: dict[str, str] = {}
        self._glob_digest: dict[tuple[str, ...], tuple[str, int]] = {}
        self._matched: dict[tuple[str, ...], list[str]] = {}
        self._lock = threading.RLock()

    def files(self) -> list[str]:
        """Project files relative to the root, sorted (git's view when in a checkout)."""
        with self._lock:
            if self._files is None:
                self._files = sorted(self._git_files() or self._walk())
            return self._files

    def _git_files(self) -> list[str] | None:
        try:
            proc = subprocess.run(
                ["git", "-C", str(self.root), "ls-files", "-z", "--cached", "--others",
                 "--exclude-standard", "--", "."],
                capture_output=True, check=False, timeout=60)
        except (OSError, subprocess.TimeoutExpired):
            return None
        if proc.returncode != 0:
            return None
        return list(dict.fromkeys(os.fsdecode(p) for p in proc.stdout.split(b"\0") if p))

    def _walk(self) -> list[str]:
        out = []
        for directory, dirs, files in os.walk(self.root):
            dirs[:] = [d for d in dirs if d not in WALK_SKIP]
            rel = Path(directory).relative_to(self.root)
            out += [(rel / f).as_posix() for f in files]
        return out

    def file_digest(self, rel: str) -> str:
        """Digest of one file: content and executable bit (or link target / absence)."""
        with self._lock:
            found = self._file_digest.get(rel)
            if found is None:
                path = self.root / rel
                try:
                    info = path.lstat()
                    if stat.S_ISLNK(info.st_mode):
                        found = "link:" + os.readlink(path)
                    elif stat.S_ISREG(info.st_mode):
                        found = file_sha256(path) + (":x" if info.st_mode & 0o111 else "")
                    else:
                        found = "other"
                except FileNotFoundError:
                    found = "missing"
                self._file_digest[rel] = found
            return found

    def matched(self, globs: Iterable[str]) -> list[str]:
        """The job inputs `globs` declare (changes.in_inputs), sorted: what its key covers
        and all it sees at /src."""
        key = tuple(globs)
        with self._lock:
            if key not in self._matched:
                self._matched[key] = [f for f in self.files() if in_inputs(f, key)]
            return self._matched[key]

    def digest(self, globs: Iterable[str]) -> tuple[str, int]:
        """(digest of the matched files, with their paths; how many)."""
        key = tuple(globs)
        with self._lock:
            if key not in self._glob_digest:
                matched = self.matched(key)
                digest = hashlib.sha256()
                for rel in matched:
                    digest.update(f"{rel}\0{self.file_digest(rel)}\0".encode(
                        "utf-8", "surrogateescape"))
                self._glob_digest[key] = (digest.hexdigest(), len(matched))
            return self._glob_digest[key]


def docker_image_id(client: Any) -> Callable[[str], str | None]:
    """tag -> local image id (None when absent or without a Docker client)."""

    def lookup(tag: str) -> str | None:
        if client is None:  # no Docker here (a VM-only worker): no image, no key
            return None
        light = getattr(client, "image_id", None)
        if light is not None:  # pipeline.run.engine's client: no SDK needed
            return light(tag)
        import docker.errors

        try:
            return str(client.images.get(tag).id)
        except docker.errors.ImageNotFound:
            return None

    return lookup


class KeyComputer:
    """Cache keys of a matrix's jobs; thread-safe, memoised, never builds an image.

    key() is None when it cannot be known yet: the job's image (or a need's) is not built.
    """

    def __init__(self, jobs: list[Job], root: Path, kernels: dict[str, LockedKernel],
                 image_tag: Callable[[Job], str], image_id: Callable[[str], str | None],
                 flavour_caches: dict[str, dict[str, str]] | None = None,
                 runtime: Callable[[], dict[str, str]] | None = None,
                 tree: SourceTree | None = None) -> None:
        self.by_id = {j.id: j for j in jobs}
        self.kernels = kernels
        self.image_tag = image_tag
        self.image_id = image_id
        self.flavour_caches = flavour_caches or {}
        self.runtime = runtime or (lambda: {})  # what VM jobs run on (run.vm.identity)
        self.tree = tree or SourceTree(root)
        self._keys: dict[str, str] = {}
        self._ids: dict[str, str] = {}
        self._vm: dict[str, str] | None = None
        self._lock = threading.RLock()

    def definition(self, job: Job) -> dict[str, Any]:
        """The job as resolved from the matrix (no file content, no Docker)."""
        spec = job.spec
        kernel = self.kernels.get(job.kernel_key) if job.kernel else None
        return {
            "format": CACHE_FORMAT, "tool": __version__, "code": tool_digest(),
            "job": job.id, "axes": job.axes(),
            "env": job.job_env(), "timeout": job.timeout, "limits": asdict(spec.limits),
            "steps": [asdict(s) for s in spec.steps] if spec.vm is None else [],
            "vm": asdict(spec.vm) if spec.vm is not None else None,
            "image": spec.image if spec.vm is None else None,
            "caches": self.flavour_caches.get(spec.image, {}) if spec.vm is None else {},
            "kernel": kernel.to_yaml() if kernel else None,
            "inputs": list(spec.inputs),
            # names only: a secret's value is never part of a key (nor stored anywhere)
            **({"secrets": list(spec.secrets)} if spec.secrets else {}),
            # a bench job's result has bench.json; its threshold only matters to the report
            **({"bench": True} if spec.bench is not None else {}),
        }

    def material(self, job: Job) -> dict[str, Any] | None:
        """Everything the key hashes (None if an image id is not known yet)."""
        with self._lock:
            inputs, count = self.tree.digest(job.spec.inputs)
            needs = {}
            for need in job.needs:
                need_job = self.by_id.get(need)
                need_key = self.key(need_job) if need_job else None
                if need_key is None:
                    return None
                needs[need] = need_key
            if job.spec.vm is not None:
                if self._vm is None:
                    self._vm = self.runtime()
                kernel = self.kernels.get(job.kernel_key) if job.kernel else None
                runs_on: dict[str, Any] = {
                    **self._vm, "kernel_image": asdict(kernel.image) if kernel else None,
                    "host_files": self._host_files(job)}
            else:
                tag = self.image_tag(job)
                image_id = self._ids.get(tag) or self.image_id(tag)
                if image_id is None:
                    return None
                self._ids[tag] = image_id
                runs_on = {"image_tag": tag, "image_id": image_id}
            return {"definition": self.definition(job), "runs_on": runs_on,
                    "input_files": count, "input_digest": inputs, "needs": needs}

    def _host_files(self, job: Job) -> dict[str, str]:
        """Digests of the files a `vm:` job puts in its initramfs (or boots) from the host,
        outside $SRC (its inputs) and $NEEDS (its needs' keys)."""
        decl = job.spec.vm
        assert decl is not None
        env = job.job_env()
        found = {}
        for value in [*decl.modules, *decl.binaries, *decl.files.values(),
                      *([decl.kernel] if decl.kernel else [])]:
            path = string.Template(value).safe_substitute(env)
            if not path.startswith("/"):  # $SRC/..., $NEEDS/...: keyed as inputs and needs
                continue
            try:
                found[path] = file_sha256(Path(path))
            except OSError:
                found[path] = "missing"
        return found

    def key(self, job: Job) -> str | None:
        """The job's cache key (hex sha256), or None while its image is not built."""
        with self._lock:
            found = self._keys.get(job.id)
            if found is None:
                material = self.material(job)
                if material is None:
                    return None
                found = self._keys[job.id] = sha256_json(material)
            return found


