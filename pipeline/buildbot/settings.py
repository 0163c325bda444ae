"""Deployment settings of the master: `.buildbot/kmatrix.yml` overridden by environment.

Everything that differs between the embedded default (one machine, sqlite, a local worker
on 127.0.0.1) and a scaled-out setup (remote workers, PostgreSQL) lives here, never in git:

    # .buildbot/kmatrix.yml
    www_port: 8010            # web UI and change hook (KMATRIX_BB_WWW_PORT)
    pb_port: 9989             # workers connect here (KMATRIX_BB_PB_PORT)
    bind: 127.0.0.1           # interface of both ports (KMATRIX_BB_BIND)
    url: http://ci.example:8010/   # public URL of the UI (KMATRIX_BB_URL)
    db_url: postgresql://bb@db/bb  # default sqlite:///state.sqlite (KMATRIX_BB_DB_URL)
    repo: /srv/git/vexfs.git  # repository the GitPoller watches (KMATRIX_BB_REPO)
    branches: [main]          # branches that build (default: all)
    poll_interval: 600        # GitPoller safety net in seconds; the hook polls at once
    local_worker: true        # run a buildbot-worker next to the master
    local_worker_capabilities: [docker, qemu]   # what the local worker may run
    max_builds: 2             # builds at once on the local worker
    workers:                  # remote workers; passwords come from a file or env only
      - {name: big-1, password_file: /etc/kmatrix/big-1.pass, capabilities: [docker]}
      - {name: vm-1, password_env: KMATRIX_WORKER_VM_1, capabilities: [qemu, kvm]}
      - {name: big-3, max_builds: 4}       # password from $KMATRIX_BB_WORKER_PASSWORD_BIG_3
    results_dir: /srv/kmatrix/results      # default <basedir>/results (the master's only)
    retention: {days: 30, revisions: 50, builds: 1000, store_mb: 2048}
    pipeline: [pipeline]      # how the local worker runs pipeline (remote ones: `pipeline`)
    require_auth: auto        # auto: on unless bind is loopback (KMATRIX_BB_REQUIRE_AUTH)
    users_file: /etc/kmatrix/www-users     # `name:password` lines (default <basedir>/www-users)
    hook_secret_file: /etc/kmatrix/hook.secret  # default <basedir>/hook.secret
    forge: {kind: github, secret_file: ..., token_file: ...}   # see forge.py

With authentication on (always when the UI is reachable from other machines), force
builds and every other control action need a login from `users_file`, and the change hook
needs the shared secret (HTTP basic auth, any user name; $KMATRIX_BB_HOOK_SECRET overrides
the file). Missing files are generated (0600) with a random `admin` password and secret.
Bound to loopback (the default) both stay open for local use; `require_auth: false` with a
non-loopback bind is refused.
"""

from __future__ import annotations

import ipaddress
import os
import re
import secrets
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from pipeline.buildbot.forge import Forge, parse_forge
from pipeline.buildbot.retention import Retention
from pipeline.errors import InputError

SETTINGS_NAME = "kmatrix.yml"
LOCAL_WORKER = "local"
SECRET_FILE = "local-worker.pass"
USERS_FILE = "www-users"
HOOK_SECRET_FILE = "hook.secret"
HOOK_SECRET_ENV = "KMATRIX_BB_HOOK_SECRET"
HOOK_USER = "kmatrix-hook"
ADMIN_USER = "admin"


CAPABILITIES = ("docker", "qemu", "kvm")
DEFAULT_CAPABILITIES = frozenset({"docker", "qemu"})


@dataclass
class WorkerSpec:
    """A worker the master accepts, and what it can run: container jobs need `docker`,
    VM jobs `qemu` (and go to `kvm` workers first)."""

    name: str
    password: str
    max_builds: int | None = None
    capabilities: frozenset[str] = DEFAULT_CAPABILITIES


@dataclass
class Settings:
    """Resolved master settings (file, then environment, then defaults)."""

    basedir: Path
    www_port: int = 8010
    pb_port: int = 9989
    bind: str = "127.0.0.1"
    url: str = ""
    db_url: str = "sqlite:///state.sqlite"
    repo: str = ""
    branches: list[str] = field(default_factory=list)
    poll_interval: int = 600
    local_worker: bool = True
    max_builds: int = 2
    workers: list[WorkerSpec] = field(default_factory=list)
    results_dir: Path | None = None
    transfer: str = "upload"
    retention: Retention = field(default_factory=Retention)
    local_capabilities: frozenset[str] = DEFAULT_CAPABILITIES
    pipeline: list[str] = field(default_factory=list)
    require_auth: bool | str = "auto"
    users_file: Path | None = None
    hook_secret_file: Path | None = None
    users: dict[str, str] = field(default_factory=dict)  # when auth_required
    hook_secret: str | None = None  # when auth_required
    forge: Forge | None = None  # GitHub / GitLab hooks and statuses

    @property
    def loopback(self) -> bool:
        """Whether `bind` is a loopback address (reachable from this machine only)."""
        return is_loopback(self.bind)

    @property
    def auth_required(self) -> bool:
        """Logins for control actions and a secret for the change hook?"""
        return self.require_auth is True or (self.require_auth == "auto" and not self.loopback)

    @property
    def users_path(self) -> Path:
        return self.users_file or self.basedir / USERS_FILE

    @property
    def hook_secret_path(self) -> Path:
        return self.hook_secret_file or self.basedir / HOOK_SECRET_FILE

    @property
    def connect_host(self) -> str:
        """Where a worker on this machine reaches the PB port."""
        return "127.0.0.1" if self.bind in ("0.0.0.0", "::", "") or self.loopback \
            else self.bind

    @property
    def www_url(self) -> str:
        return self.url or f"http://{self.bind if self.bind != '0.0.0.0' else '127.0.0.1'}:" \
                           f"{self.www_port}/"

    @property
    def results(self) -> Path:
        return self.results_dir or self.basedir / "results"

    @property
    def store(self) -> Path:
        """The master's result store (passed results by cache key, from every worker)."""
        return self.basedir / "result-store"

    @property
    def local_worker_dir(self) -> Path:
        return self.basedir / "worker"


def is_loopback(host: str) -> bool:
    """127.0.0.0/8, ::1 and localhost (an interface name or hostname: not loopback)."""
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip().strip("[]")).is_loopback
    except ValueError:
        return False


def _write_private(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)


def read_users(path: Path) -> dict[str, str]:
    """`name:password` lines (blank lines and # comments ignored)."""
    users = {}
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        name, sep, password = line.partition(":")
        if not sep or not name.strip() or not password:
            raise InputError(f"{path}:{number}: expected `name:password`")
        users[name.strip()] = password
    return users


def _load_auth(settings: Settings, env: dict[str, str], create: bool) -> None:
    """Fill users and hook_secret (generating the files when allowed)."""
    users_path, secret_path = settings.users_path, settings.hook_secret_path
    if not users_path.is_file() and create:
        _write_private(users_path, f"{ADMIN_USER}:{secrets.token_urlsafe(18)}\n")
    if users_path.is_file():
        settings.users = read_users(users_path)
    secret = env.get(HOOK_SECRET_ENV, "").strip()
    if not secret:
        if not secret_path.is_file() and create:
            _write_private(secret_path, secrets.token_urlsafe(24) + "\n")
        if secret_path.is_file():
            secret = secret_path.read_text().strip()
    if secret and (len(secret) < 16 or any(c.isspace() for c in secret)):
        raise InputError("the change hook secret must be at least 16 characters, without "
                         "spaces", hint=f"see {secret_path} or ${HOOK_SECRET_ENV}")
    settings.hook_secret = secret or None


def _env_name(worker: str) -> str:
    return "KMATRIX_BB_WORKER_PASSWORD_" + re.sub(r"[^A-Za-z0-9]", "_", worker).upper()


def local_worker_password(basedir: Path, create: bool = True) -> str:
    """The local worker's password: generated once into <basedir>/local-worker.pass (0600)."""
    path = basedir / SECRET_FILE
    if path.is_file():
        return path.read_text().strip()
    password = secrets.token_urlsafe(24)
    if create:
        basedir.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(password + "\n")
    return password


def _worker(raw: dict[str, Any], env: dict[str, str]) -> WorkerSpec:
    name = str(raw["name"])
    if "password" in raw:
        raise InputError(f"worker {name!r}: a password in kmatrix.yml is not accepted",
                         hint="use password_file: PATH or password_env: VARIABLE")
    if raw.get("password_file"):
        password = Path(raw["password_file"]).expanduser().read_text().strip()
    else:
        var = raw.get("password_env") or _env_name(name)
        if not env.get(var):
            raise InputError(f"worker {name!r}: no password: ${var} is not set",
                             hint="set it, or give password_file: PATH")
        password = env[var]
    max_builds = raw.get("max_builds")
    return WorkerSpec(name, password, int(max_builds) if max_builds else None,
                      capabilities(raw.get("capabilities"), f"worker {name!r}"))


def capabilities(raw: Any, what: str) -> frozenset[str]:
    """A worker's capabilities from a YAML list (default: docker and qemu)."""
    if raw is None:
        return DEFAULT_CAPABILITIES
    values = [raw] if isinstance(raw, str) else raw
    if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
        raise InputError(f"{what}: capabilities must be a list of {', '.join(CAPABILITIES)}")
    unknown = sorted(set(values) - set(CAPABILITIES))
    if unknown:
        raise InputError(f"{what}: unknown capabilit{'y' if len(unknown) == 1 else 'ies'} "
                         f"{', '.join(unknown)}", hint=f"known: {', '.join(CAPABILITIES)}")
    return frozenset(values)


def retention(raw: Any, path: Path) -> Retention:
    """`retention: {days, revisions, builds, store_mb}` (each optional)."""
    if raw is None:
        return Retention()
    fields = Retention.__dataclass_fields__
    if not isinstance(raw, dict) or set(raw) - set(fields):
        raise InputError(f"{path}: retention: expected a mapping of {', '.join(fields)}")
    try:
        values = {k: (float(v) if k == "days" else int(v)) for k, v in raw.items()}
    except (TypeError, ValueError):
        raise InputError(f"{path}: retention: values must be numbers") from None
    if any(v < 0 for v in values.values()):
        raise InputError(f"{path}: retention: values must not be negative")
    return Retention(**values)


def _auth_mode(value: Any, path: Path) -> bool | str:
    text = str(value).strip().lower()
    if isinstance(value, bool) or text in ("true", "false", "yes", "no", "1", "0", "on", "off"):
        return value if isinstance(value, bool) else text in ("true", "yes", "1", "on")
    if text == "auto":
        return "auto"
    raise InputError(f"{path}: require_auth: {value!r} is not true, false or auto")


ENV_SETTINGS = (("www_port", "KMATRIX_BB_WWW_PORT", int), ("pb_port", "KMATRIX_BB_PB_PORT", int),
                ("bind", "KMATRIX_BB_BIND", str), ("url", "KMATRIX_BB_URL", str),
                ("db_url", "KMATRIX_BB_DB_URL", str), ("repo", "KMATRIX_BB_REPO", str),
                ("results_dir", "KMATRIX_BB_RESULTS_DIR", str),
                ("transfer", "KMATRIX_BB_TRANSFER", str),
                ("require_auth", "KMATRIX_BB_REQUIRE_AUTH", str),
                ("users_file", "KMATRIX_BB_USERS_FILE", str))


def _read(path: Path, env: dict[str, str]) -> dict[str, Any]:
    """kmatrix.yml (optional) with the KMATRIX_BB_* variables over it; unknown keys refused."""
    data: dict[str, Any] = {}
    if path.is_file():
        data = yaml.safe_load(path.read_text()) or {}
        if not isinstance(data, dict):
            raise InputError(f"{path}: expected a mapping")
    for key, var, kind in ENV_SETTINGS:
        if env.get(var):
            data[key] = kind(env[var])
    known = set(Settings.__dataclass_fields__) - {"basedir", "users", "hook_secret"}
    known.discard("local_capabilities")
    known.add("local_worker_capabilities")
    unknown = set(data) - known
    if unknown:
        raise InputError(f"{path}: unknown setting(s) {', '.join(sorted(unknown))}",
                         hint=f"known: {', '.join(sorted(known))}")
    return data


def _apply(settings: Settings, data: dict[str, Any]) -> None:
    """Set the plain values of `data` on settings, converted to their types."""
    for key in ("www_port", "pb_port", "poll_interval", "max_builds"):
        if key in data:
            setattr(settings, key, int(data[key]))
    for key in ("bind", "url", "db_url", "repo", "transfer"):
        if key in data:
            setattr(settings, key, str(data[key]))
    if "local_worker" in data:
        settings.local_worker = bool(data["local_worker"])
    if data.get("branches"):
        settings.branches = [str(b) for b in data["branches"]]
    if data.get("results_dir"):
        settings.results_dir = Path(data["results_dir"]).expanduser().resolve()
    for key in ("users_file", "hook_secret_file"):
        if data.get(key):
            setattr(settings, key, Path(str(data[key])).expanduser().resolve())


def load_settings(basedir: str | Path, env: dict[str, str] | None = None,
                  create_secrets: bool = True) -> Settings:
    """Read <basedir>/kmatrix.yml (optional) and KMATRIX_BB_* variables."""
    env = dict(os.environ if env is None else env)
    basedir = Path(basedir).resolve()
    path = basedir / SETTINGS_NAME
    data = _read(path, env)
    settings = Settings(basedir=basedir)
    _apply(settings, data)
    settings.require_auth = _auth_mode(data.get("require_auth", "auto"), path)
    if settings.require_auth is False and not settings.loopback:
        raise InputError(f"bind: {settings.bind} makes the master reachable from other "
                         "machines, so require_auth cannot be false",
                         hint="bind to 127.0.0.1 (and put a proxy with its own login in "
                              "front), or drop require_auth")
    if settings.auth_required:
        _load_auth(settings, env, create_secrets)
    if settings.transfer != "upload":
        raise InputError(f"{path}: transfer: {settings.transfer!r} is no longer supported",
                         hint="results move through Buildbot (upload) and workers share no "
                              "disk with the master; drop the `transfer` key")
    settings.retention = retention(data.get("retention"), path)
    settings.forge = parse_forge(data.get("forge"), path, env)
    settings.local_capabilities = capabilities(data.get("local_worker_capabilities"),
                                               "local_worker_capabilities")
    settings.pipeline = [str(w) for w in (data.get("pipeline") or [])] or (
        [sys.executable, "-m", "pipeline"])
    settings.workers = [_worker(w, env) for w in data.get("workers") or []]
    if settings.local_worker:
        settings.workers.insert(0, WorkerSpec(
            LOCAL_WORKER, local_worker_password(basedir, create=create_secrets),
            settings.max_builds, settings.local_capabilities))
    if not settings.workers:
        raise InputError("no workers: local_worker is false and `workers:` is empty")
    return settings
