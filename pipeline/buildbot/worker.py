"""`pipeline worker create|start|stop|status`: a Buildbot worker on another machine.

A worker shares nothing with the master but the PB connection: its builds check out the
pushed revision, run `pipeline job` in its own directory, upload the results to the master
and download their needs' artifacts from it. Creating one takes the master's address and
a password from a file or the environment (never an argument, never git):

    pipeline worker create big-1 --master ci.example:9989 --password-file big-1.pass
    pipeline worker start          # in ./kmatrix-worker unless --basedir says otherwise

What the worker may run (docker, qemu, kvm, max builds) is declared on the master, in
`.buildbot/kmatrix.yml` (docs/BUILDBOT.md).
"""

from __future__ import annotations

import argparse
import os
import re
from pathlib import Path
from typing import Any

from pipeline.buildbot.control import _run, _stop, _tool, read_pid
from pipeline.errors import EXIT_FAILED, EXIT_OK, InputError

DEFAULT_DIR = "kmatrix-worker"
PASSWORD_ENV = "KMATRIX_WORKER_PASSWORD"
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
MASTER = re.compile(r"^(?P<host>\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_.-]+):(?P<port>[0-9]{1,5})$")


def add_parsers(sub: Any) -> None:
    """Add the `worker` subcommand to the `pipeline` parser."""
    p = sub.add_parser("worker", help="create and run a Buildbot worker for a remote master")
    p.add_argument("action", choices=["create", "start", "stop", "status"])
    p.add_argument("name", nargs="?", help="worker name (create; as declared on the master)")
    p.add_argument("--master", metavar="HOST:PORT", help="the master's PB address (create)")
    p.add_argument("--password-file", metavar="FILE",
                   help=f"file holding the worker's password (create; else ${PASSWORD_ENV})")
    p.add_argument("--basedir", metavar="DIR", default=DEFAULT_DIR,
                   help=f"worker directory (default: ./{DEFAULT_DIR})")
    p.add_argument("--force", action="store_true", help="re-create an existing worker")


def read_password(password_file: str | None) -> str:
    """The worker password from --password-file or $KMATRIX_WORKER_PASSWORD."""
    if password_file:
        try:
            text = Path(password_file).read_text().strip()
        except OSError as exc:
            raise InputError(f"--password-file {password_file}: cannot read it: "
                             f"{exc.strerror or exc}",
                             hint="the file the master's kmatrix.yml names for this worker "
                                  "(copy it here, mode 0600)") from None
        what = f"--password-file {password_file}"
    else:
        text = os.environ.get(PASSWORD_ENV, "").strip()
        what = f"${PASSWORD_ENV}"
    if not text:
        raise InputError(f"{what} is empty or not set",
                         hint=f"pass --password-file FILE or set ${PASSWORD_ENV}; the "
                              "password is the one the master holds for this worker")
    return text


def check_create_args(args: argparse.Namespace) -> tuple[str, str, str]:
    """(name, host:port, password) for `create`, or an InputError saying what to pass."""
    if not args.name or not NAME.match(args.name):
        raise InputError(f"worker name {args.name!r} is not valid" if args.name else
                         "`pipeline worker create` needs the worker's name",
                         hint="letters, digits, '.', '_' and '-', as in the master's "
                              "kmatrix.yml `workers:` list")
    match = MASTER.match(args.master or "")
    if not match or not 0 < int(match.group("port")) < 65536:
        raise InputError(f"--master {args.master!r} is not HOST:PORT" if args.master else
                         "`pipeline worker create` needs --master HOST:PORT",
                         hint="the master's address and its pb_port (default 9989)")
    return args.name, args.master, read_password(args.password_file)


def create(args: argparse.Namespace, basedir: Path) -> int:
    """buildbot-worker create-worker, with the password only in the worker's 0600 tac."""
    name, master, password = check_create_args(args)
    if (basedir / "buildbot.tac").is_file() and not args.force:
        raise InputError(f"{basedir} already holds a worker",
                         hint="pass --force to re-create it, or --basedir DIR")
    basedir.mkdir(parents=True, exist_ok=True)
    os.chmod(basedir, 0o700)
    _run([_tool("buildbot-worker"), "create-worker", "--force", "-r", "--umask=0o022",
          str(basedir), master, name, password], dict(os.environ),
         "buildbot-worker create-worker")
    os.chmod(basedir / "buildbot.tac", 0o600)
    print(f"worker {name} created in {basedir} for master {master}")
    print(f"start it with: pipeline worker start --basedir {basedir}")
    return EXIT_OK


def start(basedir: Path) -> int:
    if not (basedir / "buildbot.tac").is_file():
        raise InputError(f"{basedir} holds no worker",
                         hint="create one first: pipeline worker create NAME --master "
                              "HOST:PORT --password-file FILE")
    pid = read_pid(basedir)
    if pid is not None:
        print(f"worker already running (pid {pid})")
        return EXIT_OK
    _run([_tool("buildbot-worker"), "start", str(basedir)], dict(os.environ),
         "buildbot-worker start")
    print(f"worker started (pid {read_pid(basedir)}) in {basedir}")
    return EXIT_OK


def cmd_worker(args: argparse.Namespace) -> int:
    basedir = Path(args.basedir).resolve()
    if args.action == "create":
        return create(args, basedir)
    if args.action == "start":
        return start(basedir)
    if args.action == "stop":
        if not _stop(basedir, "worker"):
            print("the worker was not running")
        return EXIT_OK
    pid = read_pid(basedir)
    print(f"worker: {f'running (pid {pid})' if pid else 'stopped'}  ({basedir})")
    return EXIT_OK if pid else EXIT_FAILED
