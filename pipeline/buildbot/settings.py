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
    max_builds: 2             # builds at once on the local worker
    workers:                  # remote workers; passwords come from a file or env only
      - {name: big-1, password_file: /etc/kmatrix/big-1.pass}
      - {name: big-2, password_env: KMATRIX_WORKER_BIG_2}
      - {name: big-3, max_builds: 4}       # password from $KMATRIX_BB_WORKER_PASSWORD_BIG_3
    results_dir: /srv/kmatrix/results      # default <basedir>/results
    transfer: local           # workers share results_dir with the master (only mode yet)
    pipeline: [pipeline]      # command that runs `pipeline` on remote workers
"""

from __future__ import annotations

import os
import re
import secrets
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from pipeline.errors import InputError

SETTINGS_NAME = "kmatrix.yml"
LOCAL_WORKER = "local"
SECRET_FILE = "local-worker.pass"


@dataclass
class WorkerSpec:
    """A worker the master accepts."""

    name: str
    password: str
    max_builds: int | None = None


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
    transfer: str = "local"
    pipeline: list[str] = field(default_factory=list)

    @property
    def www_url(self) -> str:
        return self.url or f"http://{self.bind if self.bind != '0.0.0.0' else '127.0.0.1'}:" \
                           f"{self.www_port}/"

    @property
    def results(self) -> Path:
        return self.results_dir or self.basedir / "results"

    @property
    def local_worker_dir(self) -> Path:
        return self.basedir / "worker"


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
    return WorkerSpec(name, password, int(max_builds) if max_builds else None)


def load_settings(basedir: str | Path, env: dict[str, str] | None = None,
                  create_secrets: bool = True) -> Settings:
    """Read <basedir>/kmatrix.yml (optional) and KMATRIX_BB_* variables."""
    env = dict(os.environ if env is None else env)
    basedir = Path(basedir).resolve()
    path = basedir / SETTINGS_NAME
    data: dict[str, Any] = {}
    if path.is_file():
        data = yaml.safe_load(path.read_text()) or {}
        if not isinstance(data, dict):
            raise InputError(f"{path}: expected a mapping")
    for key, var, kind in (("www_port", "KMATRIX_BB_WWW_PORT", int),
                           ("pb_port", "KMATRIX_BB_PB_PORT", int),
                           ("bind", "KMATRIX_BB_BIND", str), ("url", "KMATRIX_BB_URL", str),
                           ("db_url", "KMATRIX_BB_DB_URL", str),
                           ("repo", "KMATRIX_BB_REPO", str),
                           ("results_dir", "KMATRIX_BB_RESULTS_DIR", str),
                           ("transfer", "KMATRIX_BB_TRANSFER", str)):
        if env.get(var):
            data[key] = kind(env[var])
    known = set(Settings.__dataclass_fields__) - {"basedir"}
    unknown = set(data) - known
    if unknown:
        raise InputError(f"{path}: unknown setting(s) {', '.join(sorted(unknown))}",
                         hint=f"known: {', '.join(sorted(known))}")
    settings = Settings(basedir=basedir)
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
    if settings.transfer != "local":
        raise InputError(f"transfer: {settings.transfer!r} is not supported yet",
                         hint="workers must share results_dir with the master "
                              "(docs/BUILDBOT.md, Limitation)")
    settings.pipeline = [str(w) for w in (data.get("pipeline") or [])] or (
        [sys.executable, "-m", "pipeline"])
    settings.workers = [_worker(w, env) for w in data.get("workers") or []]
    if settings.local_worker:
        settings.workers.insert(0, WorkerSpec(
            LOCAL_WORKER, local_worker_password(basedir, create=create_secrets),
            settings.max_builds))
    if not settings.workers:
        raise InputError("no workers: local_worker is false and `workers:` is empty")
    return settings
