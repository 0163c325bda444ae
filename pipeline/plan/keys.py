"""Content-addressed job results: a job whose key has a stored, passed result is not re-run.

Key (KeyComputer): sha256 over the job's resolved definition (id, axes, env, steps or vm
spec, timeout, limits, flavour caches), what it runs on (container jobs: the image tag,
itself a content hash of the rendered flavour, plus the local image id; VM jobs: the
locked kernel image package with its sha256, the QEMU version, the busybox binary and
the init template), the content of the files its `inputs` globs match (every project file
for a job without inputs) and the keys of its needs. Project files are the git-tracked and
untracked-not-ignored ones (a walk skipping .git, reports, target, ... outside git).
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
import subprocess
import threading
from collections.abc import Callable, Iterable
from dataclasses import asdict
from pathlib import Path
from typing import Any

from pipeline import __version__
from pipeline.debian.lock import LockedKernel
from pipeline.fsutil import file_sha256
from pipeline.model.expand import Job
from pipeline.plan.changes import file_matches

CACHE_FORMAT = "1"  # bump to invalidate every stored result
# The code that decides what a job does and how its output becomes results: a change to
# any of these files invalidates stored results (an upgrade cannot reuse stale verdicts).
# Paths are relative to the package; a folder means every .py and .j2 file below it.
BEHAVIOUR_FILES = ("run", "results", "debian/kernels.py")


def tool_digest() -> str:
    """Hash of the pipeline code that shapes job results (see BEHAVIOUR_FILES)."""
    global _TOOL_DIGEST
    if _TOOL_DIGEST is None:
        digest = hashlib.sha256()
        package = Path(__file__).resolve().parent.parent
        for path in _behaviour_paths(package):
            digest.update(path.relative_to(package).as_posix().encode() + b"\0")
            digest.update(path.read_bytes())
        _TOOL_DIGEST = digest.hexdigest()[:16]
    return _TOOL_DIGEST


def _behaviour_paths(package: Path) -> list[Path]:
    paths: list[Path] = []
    for name in BEHAVIOUR_FILES:
        path = package / name
        if path.is_dir():
            paths += sorted(p for p in path.rglob("*") if p.suffix in (".py", ".j2"))
        elif path.is_file():
            paths.append(path)
    return paths


_TOOL_DIGEST: str | None = None
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

    def digest(self, globs: Iterable[str]) -> tuple[str, int]:
        """(digest of the files matching the globs, with their paths; how many); no globs:
        every file."""
        key = tuple(globs)
        with self._lock:
            if key not in self._glob_digest:
                matched = [f for f in self.files() if not key or file_matches(f, key)]
                digest = hashlib.sha256()
                for rel in matched:
                    digest.update(f"{rel}\0{self.file_digest(rel)}\0".encode(
                        "utf-8", "surrogateescape"))
                self._glob_digest[key] = (digest.hexdigest(), len(matched))
            return self._glob_digest[key]


def docker_image_id(client: Any) -> Callable[[str], str | None]:
    """tag -> local image id (None when absent or without a Docker client)."""

    def lookup(tag: str) -> str | None:
        import docker.errors

        if client is None:  # no Docker here (a VM-only worker): no image, no key
            return None
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
        kernel = self.kernels.get(job.kernel) if job.kernel else None
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
                kernel = self.kernels.get(job.kernel) if job.kernel else None
                runs_on: dict[str, Any] = {
                    **self._vm, "kernel_image": asdict(kernel.image) if kernel else None}
            else:
                tag = self.image_tag(job)
                image_id = self._ids.get(tag) or self.image_id(tag)
                if image_id is None:
                    return None
                self._ids[tag] = image_id
                runs_on = {"image_tag": tag, "image_id": image_id}
            return {"definition": self.definition(job), "runs_on": runs_on,
                    "input_files": count, "input_digest": inputs, "needs": needs}

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


