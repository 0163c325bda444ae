"""A throwaway PostgreSQL server: Debian's `postgresql` binaries, a cluster in a temporary
directory owned by an unprivileged user, listening on 127.0.0.1 only, password auth.

    with PostgresServer(Path(tempfile.mkdtemp())) as pg:
        pg.url  # postgresql+psycopg2://kmatrix:<password>@127.0.0.1:<port>/buildbot
"""

from __future__ import annotations

import glob
import os
import secrets
import shutil
import socket
import subprocess
from pathlib import Path
from typing import Any

RUN_AS = "nobody"  # initdb refuses root; the cluster's files belong to this user


def bindir() -> Path | None:
    """The newest installed server's bin directory (Debian: /usr/lib/postgresql/N/bin)."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"),
                   key=lambda p: int(Path(p).parts[-3]))
    return Path(found[-1]).parent if found else None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class PostgresServer:
    """initdb + pg_ctl start in `root` (made traversable), stop() removes nothing but the
    server process; the caller removes the directory."""

    user = "kmatrix"
    database = "buildbot"

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.data = self.root / "data"
        self.sockets = self.root / "sockets"
        self.log = self.sockets / "server.log"
        self.password = secrets.token_hex(12)
        self.port = free_port()
        self.bin = bindir()
        self.started = False

    @property
    def url(self) -> str:
        return (f"postgresql+psycopg2://{self.user}:{self.password}@127.0.0.1:{self.port}/"
                f"{self.database}")

    def _as_owner(self, *cmd: Any, **kw: Any) -> subprocess.CompletedProcess[str]:
        prefix = ["runuser", "-u", RUN_AS, "--"] if os.getuid() == 0 else []
        proc = subprocess.run([*prefix, *map(str, cmd)], text=True, capture_output=True,
                              timeout=120, **kw)
        if proc.returncode != 0:
            log = self.log.read_text(errors="replace")[-2000:] if self.log.is_file() else ""
            raise RuntimeError(f"{Path(str(cmd[0])).name} exited {proc.returncode}:\n"
                               f"{proc.stdout}{proc.stderr}{log}")
        return proc

    def start(self) -> PostgresServer:
        assert self.bin is not None, "Debian's postgresql package is not installed"
        self.root.mkdir(parents=True, exist_ok=True)
        os.chmod(self.root, 0o755)
        for path in (self.data, self.sockets):
            path.mkdir()
            if os.getuid() == 0:
                shutil.chown(path, RUN_AS)
        pwfile = self.sockets / "pw"
        pwfile.write_text(self.password + "\n")
        if os.getuid() == 0:
            shutil.chown(pwfile, RUN_AS)
        self._as_owner(self.bin / "initdb", "-D", self.data, "-U", self.user,
                       f"--pwfile={pwfile}", "--auth-local=peer",
                       "--auth-host=scram-sha-256", "-E", "UTF8", "--no-sync")
        pwfile.unlink()
        options = (f"-c listen_addresses=127.0.0.1 -p {self.port} "
                   f"-c unix_socket_directories={self.sockets} -c fsync=off")
        self._as_owner(self.bin / "pg_ctl", "-D", self.data, "-o", options,
                       "-l", self.log, "-w", "-t", "60", "start")
        self.started = True
        env = {**os.environ, "PGPASSWORD": self.password}
        self._as_owner(self.bin / "createdb", "-h", "127.0.0.1", "-p", self.port,
                       "-U", self.user, self.database, env=env)
        return self

    def query(self, sql: str) -> str:
        """One SQL statement through psql over TCP; its unaligned output."""
        env = {**os.environ, "PGPASSWORD": self.password}
        return self._as_owner(self.bin / "psql", "-h", "127.0.0.1", "-p", self.port,
                              "-U", self.user, "-d", self.database, "-At", "-c", sql,
                              env=env).stdout.strip()

    def stop(self) -> None:
        if self.started:
            self._as_owner(self.bin / "pg_ctl", "-D", self.data, "-m", "fast", "-w", "stop")
            self.started = False

    def __enter__(self) -> PostgresServer:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()
