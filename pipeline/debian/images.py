"""Toolchain images: render images/*.j2, tag by content hash, build without a registry.

Two bases are supported (`defaults.image-base` in matrix.yml, or KMATRIX_IMAGE_BASE):
- ``mmdebstrap`` (default): mmdebstrap bootstraps a Debian rootfs, the flavour's Dockerfile
  is carried out in it (RUN steps in the chroot) and the tarball is imported with
  ``docker import`` and the Dockerfile's settings (pipeline.debian.bootstrap). No registry
  and no ``docker build``. A shared apt archive cache makes several images download each
  .deb once.
- ``registry``: the Dockerfile starts ``FROM debian:<suite>`` and installs with apt.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import jinja2
import yaml

from pipeline.debian.archive import snapshot_mirror
from pipeline.debian.bootstrap import bootstrap_image, mmdebstrap_command  # noqa: F401 (API)
from pipeline.debian.bootstrap import safe_name as _safe
from pipeline.debian.bootstrap import tail as _tail
from pipeline.debian.lock import LockedKernel
from pipeline.errors import EnvironmentProblem, ImageBuildError, InputError
from pipeline.paths import cache_dir, template_cache

IMAGE_FORMAT_VERSION = "1"  # bump to force every image to rebuild
DEBIAN_MIRROR = "http://deb.debian.org/debian"
NAMESPACE_VAR = "KMATRIX_IMAGE_NAMESPACE"
DEFAULT_BUILD_MINUTES = 3
# libyaml's safe loader when PyYAML has it: the same data in a tenth of the time
SAFE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


@dataclass(frozen=True)
class ImageBase:
    """Where images start from."""

    mode: str = "mmdebstrap"  # or "registry"
    registry_image: str = "debian"
    snapshot: str = ""  # matrix.yml's top-level snapshot: for flavours on Debian's mirror


@dataclass(frozen=True)
class Flavour:
    """A flavour rendered for one kernel (or none): plain data, ready to hash."""

    name: str
    suite: str
    mirror: str
    components: tuple[str, ...]
    sources: tuple[str, ...]
    keyring: str
    packages: tuple[str, ...]
    env: dict[str, str] = field(default_factory=dict)
    architectures: tuple[str, ...] = ()  # foreign dpkg architectures (packages `name:arm64`)
    extract: tuple[str, ...] = ()  # packages unpacked into / (dpkg-deb -x), not installed

    def rootfs_recipe(self) -> dict[str, Any]:
        """Everything that determines the bootstrapped rootfs."""
        return {
            "format": IMAGE_FORMAT_VERSION,
            "suite": self.suite,
            "mirror": self.mirror,
            "components": list(self.components),
            "sources": list(self.sources),
            "keyring": self.keyring,
            "packages": sorted(self.packages),
            **self._foreign(),
        }

    def _foreign(self) -> dict[str, Any]:
        """architectures and extract, only when set (other images keep their tags)."""
        return {k: list(v) for k, v in (("architectures", self.architectures),
                                         ("extract", self.extract)) if v}

    def hashed(self) -> dict[str, Any]:
        """What the image tag hashes of the flavour."""
        data = asdict(self)
        del data["architectures"], data["extract"]
        return {**data, **self._foreign()}


@dataclass(frozen=True)
class ImageRef:
    """A built (or reused) image."""

    flavour: str
    tag: str
    id: str
    built: bool
    seconds: float


def _hash(data: Any) -> str:
    blob = json.dumps(data, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(blob).hexdigest()


def _split_words(value: Any) -> tuple[str, ...]:
    if isinstance(value, list | tuple):
        return tuple(str(v) for v in value if str(v))
    return tuple(str(value).split())


BUILTIN_IMAGES = Path(__file__).resolve().parents[1] / "images"  # package data


def _flavours(path: Path) -> dict[str, Any]:
    """A flavours.yml as a mapping ({} when the file does not exist)."""
    try:
        data = yaml.load(path.read_text(), Loader=SAFE_LOADER) or {}
    except FileNotFoundError:
        return {}
    except yaml.YAMLError as exc:
        raise InputError(f"{path}: invalid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise InputError(f"{path}: expected a mapping of flavour names to flavours")
    return data


class ImageCatalog:
    """The built-in flavours (pipeline/images/) and those of a project's images/ directory
    (same name: the project's wins; its templates too), rendered with Jinja2."""

    def __init__(self, images_dir: Path) -> None:
        self.images_dir = images_dir
        self.spec: dict[str, Any] = {}
        for folder in (BUILTIN_IMAGES, images_dir):  # the project's flavours add or replace
            self.spec.update(_flavours(folder / "flavours.yml"))
        self.env = jinja2.Environment(
            loader=jinja2.ChoiceLoader([jinja2.FileSystemLoader(str(images_dir)),
                                        jinja2.FileSystemLoader(str(BUILTIN_IMAGES))]),
            undefined=jinja2.StrictUndefined,
            keep_trailing_newline=True,
            autoescape=False,
            bytecode_cache=template_cache("images"),
        )
        self._values: dict[str, str] = {}  # Jinja values by content: bytecode-cached too
        self._values_env = self.env.overlay(loader=jinja2.FunctionLoader(self._values.get))

    def names(self) -> list[str]:
        """Declared flavour names."""
        return sorted(self.spec)

    def per_kernel(self, name: str) -> bool:
        """Whether the flavour is built once per kernel."""
        return self.spec.get(name, {}).get("per") == "kernel"

    def build_minutes(self, name: str) -> float:
        """The flavour's `build-minutes`: about how long building its image takes on a
        2-core machine (default 3); a run starts the jobs behind the slowest missing images
        first (pipeline.plan.order)."""
        value = self.spec.get(name, {}).get("build-minutes", DEFAULT_BUILD_MINUTES)
        if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
            raise InputError(f"images/flavours.yml: flavour {name!r}: build-minutes is "
                             f"{value!r}", hint="a number of minutes, e.g. `build-minutes: 3`")
        return float(value)

    def render(self, name: str, kernel: LockedKernel | None, base: ImageBase) -> Flavour:
        """Render one flavour's strings with the kernel's lock entry."""
        if name not in self.spec:
            raise InputError(
                f"unknown image flavour {name!r}",
                hint=f"built-in flavours and {self.images_dir}/flavours.yml's: "
                     f"{', '.join(self.names())}",
            )
        raw = self.spec[name]
        if raw.get("per") == "kernel" and kernel is None:
            raise InputError(f"image flavour {name!r} is per kernel, but the job has no kernel")
        ctx = {"kernel": kernel.template_context() if kernel else {}, "base": asdict(base)}

        def render(value: Any) -> str:
            text = str(value)
            if "{" not in text and "\r" not in text:  # no Jinja syntax: renders as itself
                return text.strip()
            try:
                return self._value_template(text).render(ctx).strip()
            except jinja2.TemplateError as exc:
                raise InputError(f"images/flavours.yml: flavour {name!r}: {exc}") from None

        mirror = render(raw.get("mirror", DEBIAN_MIRROR))
        if base.snapshot and mirror.rstrip("/") == DEBIAN_MIRROR:
            mirror = snapshot_mirror(base.snapshot)  # a per-kernel one is in the lock already
        return Flavour(
            name=name,
            suite=render(raw.get("suite", "")),
            mirror=mirror,
            components=_split_words(render(raw.get("components", "main"))),
            sources=_split_words(render(raw.get("sources", raw.get("suite", "")))),
            keyring=render(raw.get("keyring", "")),
            packages=tuple(render(p) for p in raw.get("packages", [])),
            env={k: render(v) for k, v in (raw.get("env") or {}).items()},
            architectures=_split_words(render(raw.get("architectures", ""))),
            extract=tuple(x for x in (render(p) for p in raw.get("extract", [])) if x),
        )

    def _value_template(self, text: str) -> jinja2.Template:
        """A flavour value, compiled once; a syntax error as from_string() raises it."""
        name = "flavours.yml:" + hashlib.sha256(text.encode()).hexdigest()[:32]
        self._values[name] = text
        try:
            return self._values_env.get_template(name)
        except jinja2.TemplateSyntaxError:
            return self.env.from_string(text)

    def dockerfile(self, flavour: Flavour, base: ImageBase, rootfs_image: str) -> str:
        """Render the Dockerfile for a flavour."""
        try:
            template = self.env.get_template("Dockerfile.j2")
            return template.render(
                flavour=asdict(flavour), base=asdict(base), rootfs_image=rootfs_image
            ).lstrip()
        except jinja2.TemplateError as exc:
            raise InputError(f"images/Dockerfile.j2: {exc}") from None


def namespace() -> str:
    """The first part of every image name kmatrix makes: $KMATRIX_IMAGE_NAMESPACE, else
    `kmatrix`. Another namespace is a separate set of images in the same engine (bench (i)
    builds a fresh machine's images there without touching the user's)."""
    value = os.environ.get(NAMESPACE_VAR, "kmatrix")
    if not re.fullmatch(r"[a-z0-9]+(?:[._-][a-z0-9]+)*", value):
        raise InputError(f"{NAMESPACE_VAR}={value!r} is not a Docker repository name part",
                         hint="use lower-case letters and digits, separated by . _ or -")
    return value


def rootfs_tag(flavour: Flavour) -> str:
    """Docker tag of the imported rootfs for a flavour."""
    return f"{namespace()}/rootfs:{_hash(flavour.rootfs_recipe())[:16]}"


def image_tag(flavour: Flavour, dockerfile: str, kernel: LockedKernel | None) -> str:
    """Content-hash tag of the final flavour image."""
    digest = _hash({"flavour": flavour.hashed(), "dockerfile": dockerfile})[:16]
    suffix = (f"-{kernel.version}" + ("" if kernel.arch == "amd64" else f"-{kernel.arch}")
              if kernel else "")
    repo = f"{namespace()}/{flavour.name}{suffix}"
    return f"{repo.lower()}:{digest}"


@contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


class ImageBuilder:
    """Ensures flavour images exist in the local Docker engine, building only what changed."""

    def __init__(
        self,
        docker_client: Any,
        catalog: ImageCatalog,
        base: ImageBase,
        log: Callable[[str], None] = lambda _msg: None,
    ) -> None:
        self.client = docker_client
        self.catalog = catalog
        self.base = base
        self.log = log
        self.cache = cache_dir()
        self._locks: dict[str, threading.Lock] = {}
        self._locks_guard = threading.Lock()
        self._failed: dict[str, ImageBuildError] = {}  # tag -> why it failed in this run
        self._plans: dict[tuple[str, LockedKernel | None], tuple[Flavour, str, str]] = {}
        self.seen: dict[str, str] = {}  # tag -> image id, as exists() found them

    def _thread_lock(self, key: str) -> threading.Lock:
        with self._locks_guard:
            return self._locks.setdefault(key, threading.Lock())

    def _exists(self, tag: str) -> str | None:
        lookup = getattr(self.client, "image_id", None)
        if lookup is not None:  # pipeline.run.engine's client: no SDK needed
            return lookup(tag)
        import docker.errors
        import requests.exceptions

        try:
            return self.client.images.get(tag).id
        except docker.errors.ImageNotFound:
            return None
        except requests.exceptions.RequestException as exc:
            raise EnvironmentProblem(f"Docker is not reachable ({exc.__class__.__name__})",
                                     hint="start the Docker Engine or set DOCKER_HOST"
                                     ) from None

    def exists(self, tag: str) -> bool:
        """Whether the image is in the local engine (the ids found are kept in `seen`)."""
        found = self._exists(tag) if self.client is not None else None
        if found:
            self.seen[tag] = found
        return found is not None

    def plan(self, flavour_name: str, kernel: LockedKernel | None) -> tuple[Flavour, str, str]:
        """Render a flavour (once): (flavour, dockerfile text, final tag). Pure but reading."""
        memo = (flavour_name, kernel)
        if memo not in self._plans:
            flavour = self.catalog.render(flavour_name, kernel, self.base)
            dockerfile = self.catalog.dockerfile(flavour, self.base, rootfs_tag(flavour))
            self._plans[memo] = flavour, dockerfile, image_tag(flavour, dockerfile, kernel)
        return self._plans[memo]

    def ensure(self, flavour_name: str, kernel: LockedKernel | None) -> ImageRef:
        """Return the image for a flavour, building it (and its rootfs) if absent.

        A build that failed is not retried by this builder (i.e. in this run): the jobs
        that share the image get the same ImageBuildError at once."""
        flavour, dockerfile, tag = self.plan(flavour_name, kernel)
        started = time.monotonic()
        with self._thread_lock(tag):
            if tag in self._failed:
                raise self._failed[tag]
            with _file_lock(self.cache / "locks" / _safe(tag)):
                image_id = self._exists(tag)
                if image_id:
                    return ImageRef(flavour_name, tag, image_id, False,
                                    time.monotonic() - started)
                try:
                    if self.base.mode == "mmdebstrap":
                        bootstrap_image(flavour, dockerfile, tag, self.client, self.cache,
                                        self.log)
                        image_id = self._exists(tag)
                        if not image_id:
                            raise ImageBuildError(f"docker import of {tag} produced no image")
                    else:
                        self.log(f"building image {tag}")
                        image_id = self._docker_build(dockerfile, tag)
                except ImageBuildError as exc:
                    self._failed[tag] = exc
                    raise
        return ImageRef(flavour_name, tag, image_id, True, time.monotonic() - started)

    def failed(self, tag: str) -> bool:
        """Whether building `tag` failed earlier in this run."""
        return tag in self._failed

    def _docker_build(self, dockerfile: str, tag: str) -> str:
        import docker.errors
        import requests.exceptions

        with tempfile.TemporaryDirectory(prefix="kmatrix-build-") as ctx:
            Path(ctx, "Dockerfile").write_text(dockerfile)
            lines: list[str] = []
            try:
                for chunk in self.client.api.build(
                    path=ctx, tag=tag, rm=True, forcerm=True, decode=True,
                    pull=False, labels={"org.kmatrix.tag": tag},
                ):
                    if "stream" in chunk:
                        lines.append(chunk["stream"])
                    if "error" in chunk:
                        lines.append(chunk["error"])
                        raise ImageBuildError(
                            f"docker build of {tag} failed: {chunk['error'].strip()}; "
                            f"last lines:\n{_tail(''.join(lines))}"
                        )
            except docker.errors.APIError as exc:
                raise ImageBuildError(
                    f"docker build of {tag} failed: {exc.explanation or exc}; last lines:\n"
                    f"{_tail(''.join(lines))}"
                ) from None
            except requests.exceptions.RequestException as exc:
                raise EnvironmentProblem(
                    f"Docker is not reachable while building {tag} "
                    f"({exc.__class__.__name__}); last lines:\n{_tail(''.join(lines))}"
                ) from None
        image_id = self._exists(tag)
        if not image_id:
            raise ImageBuildError(f"docker build of {tag} produced no image")
        return image_id
