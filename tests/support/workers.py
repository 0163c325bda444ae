"""Remote-style Buildbot workers for tests: each its own unprivileged user (in the docker
group), its own base directory (0700) and kmatrix installed as a user would install it
(a venv from Debian's python3 with `pip install '<kmatrix>[buildbot]'`, non-editable, so
the worker reads nothing of the checkout).

The venv's dependencies are kept in /var/tmp between runs (keyed by pyproject.toml and
requirements.lock); kmatrix itself is reinstalled from a copy of the source every session.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SYSTEM_PYTHON = "/usr/bin/python3"
SOURCE_PARTS = ("pyproject.toml", "README.md", "pipeline")


def _run(cmd: list[str], **kw) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(cmd, text=True, capture_output=True, timeout=900, **kw)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[:4])} ... exited {proc.returncode}:\n"
                           f"{proc.stdout[-3000:]}{proc.stderr[-3000:]}")
    return proc


def worker_venv() -> Path:
    """A venv any user can run, holding kmatrix[buildbot] as installed from this tree."""
    key = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()
                         + (ROOT / "requirements.lock").read_bytes()).hexdigest()[:12]
    venv = Path(f"/var/tmp/kmatrix-test-worker-venv-{key}")
    stamp = venv / ".deps-installed"
    if not stamp.is_file():
        shutil.rmtree(venv, ignore_errors=True)
        _run([SYSTEM_PYTHON, "-m", "venv", str(venv)])
        _run([str(venv / "bin/pip"), "install", "-q", "-c", str(ROOT / "requirements.lock"),
              f"{ROOT}[buildbot]"])
        stamp.touch()
    source = Path(tempfile.mkdtemp(prefix="kmatrix-src-"))
    try:
        for part in SOURCE_PARTS:
            src = ROOT / part
            if src.is_dir():
                shutil.copytree(src, source / part,
                                ignore=shutil.ignore_patterns("__pycache__"))
            else:
                shutil.copy(src, source / part)
        _run([str(venv / "bin/pip"), "install", "-q", "--no-deps", "--force-reinstall",
              str(source)])
    finally:
        shutil.rmtree(source, ignore_errors=True)
    os.chmod(venv, 0o755)
    return venv


def ensure_user(name: str, home: Path) -> pwd.struct_passwd:
    """A system user `name` in the docker group (created once, reused afterwards)."""
    try:
        pwd.getpwnam(name)
    except KeyError:
        _run(["useradd", "--system", "--user-group", "--no-create-home", "--home-dir",
              str(home), "--shell", "/usr/sbin/nologin", "--groups", "docker", name])
    _run(["usermod", "--home", str(home), "--append", "--groups", "docker", name])
    return pwd.getpwnam(name)


def shared_root(prefix: str) -> Path:
    """A directory under /tmp other users can traverse (pytest's tmp_path is 0700)."""
    path = Path(tempfile.mkdtemp(prefix=prefix))
    os.chmod(path, 0o711)
    return path


class TestWorker:
    """One worker: `pipeline worker create` + `start` as its own user, stopped by pid."""

    __test__ = False

    def __init__(self, name: str, user: str, root: Path, venv: Path) -> None:
        self.name, self.user, self.venv = name, user, venv
        # HOME (kmatrix's caches: kernel packages) outlives the test, like a machine's;
        # the worker's base directory is new for every test
        self.home = Path(f"/var/tmp/kmatrix-test-home-{user}")
        self.account = ensure_user(user, self.home)
        self.basedir = root / user
        for path in (self.home, self.basedir):
            path.mkdir(parents=True, exist_ok=True)
            os.chown(path, self.account.pw_uid, self.account.pw_gid)
            os.chmod(path, 0o700)

    def env(self) -> dict[str, str]:
        path = f"{self.venv}/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
        return {"HOME": str(self.home), "USER": self.user, "PATH": path, "LANG": "C.UTF-8",
                "PYTHONUNBUFFERED": "1"}

    def as_user(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        cmd = ["runuser", "-u", self.user, "--", "env", "-i",
               *(f"{k}={v}" for k, v in self.env().items()), *args]
        proc = subprocess.run(cmd, text=True, capture_output=True, timeout=300,
                              cwd=self.home)
        if check and proc.returncode != 0:
            raise AssertionError(f"{' '.join(args)} as {self.user} exited "
                                 f"{proc.returncode}:\n{proc.stdout}{proc.stderr}")
        return proc

    def create(self, master: str, password: str) -> None:
        secret = self.basedir / "worker.pass"
        secret.write_text(password + "\n")
        os.chown(secret, self.account.pw_uid, self.account.pw_gid)
        os.chmod(secret, 0o600)
        self.as_user("pipeline", "worker", "create", self.name, "--master", master,
                     "--password-file", str(secret), "--basedir", str(self.basedir / "bb"))

    def start(self) -> None:
        self.as_user("pipeline", "worker", "start", "--basedir", str(self.basedir / "bb"))

    def pid(self) -> int | None:
        try:
            pid = int((self.basedir / "bb" / "twistd.pid").read_text().strip())
        except (OSError, ValueError):
            return None
        return pid if Path(f"/proc/{pid}").exists() else None

    def kill(self) -> None:
        """SIGKILL every process of the worker's user, as if its machine died (the
        containers its jobs started run on, as on a machine cut off the network)."""
        for _round in range(3):
            pids = processes_of(self.account.pw_uid)
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            deadline = time.monotonic() + 10
            while any(Path(f"/proc/{p}").exists() for p in pids) and \
                    time.monotonic() < deadline:
                time.sleep(0.1)

    def stop(self) -> None:
        if self.pid() is not None:
            self.as_user("pipeline", "worker", "stop", "--basedir", str(self.basedir / "bb"),
                         check=False)
        self.kill()

    def log(self) -> str:
        path = self.basedir / "bb" / "twistd.log"
        return path.read_text(errors="replace") if path.is_file() else ""


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class GitServer:
    """`git daemon` serving one directory's repositories read-only on 127.0.0.1: how
    workers on other machines reach the pushed revisions (they cannot read its files)."""

    def __init__(self, base: Path) -> None:
        self.base, self.port = Path(base), free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    def url(self, repo: str) -> str:
        return f"git://127.0.0.1:{self.port}/{repo}"

    def start(self) -> GitServer:
        self.proc = subprocess.Popen(
            ["git", "daemon", "--reuseaddr", "--export-all", "--listen=127.0.0.1",
             f"--port={self.port}", f"--base-path={self.base}", "--informative-errors",
             str(self.base)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            probe = subprocess.run(["git", "ls-remote", self.url("origin.git")],
                                   capture_output=True, timeout=20)
            if probe.returncode == 0:
                return self
            time.sleep(0.2)
        raise RuntimeError("git daemon did not answer")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(timeout=20)
            self.proc = None


def processes_of(uid: int) -> list[int]:
    """Pids of the processes a (test) user runs now."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if entry.stat().st_uid == uid:
                    pids.append(int(entry.name))
            except OSError:
                continue
    return pids
