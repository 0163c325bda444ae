"""`pipeline master start|stop|status` and `pipeline hook install` (no Buildbot import).

The embedded default: a master in <project>/.buildbot (sqlite) running the project's
master.cfg, and a local buildbot-worker in .buildbot/worker connecting to 127.0.0.1.
`stop` ends exactly the processes named by their twistd.pid files.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from pipeline.errors import EXIT_FAILED, EXIT_OK, InputError, PipelineError
from pipeline.fsutil import pid_alive
from pipeline.paths import find_matrix

HOOK_MARK = "installed by `pipeline hook install`"


def add_parsers(sub: Any) -> None:
    """Add the `master` and `hook` subcommands to the `pipeline` parser."""
    p = sub.add_parser("master", help="run the Buildbot master and a local worker "
                                      "(.buildbot/ next to matrix.yml)")
    p.add_argument("action", choices=["start", "stop", "status", "reconfig"])
    p.add_argument("--basedir", metavar="DIR", help="master directory (default: .buildbot "
                   "next to matrix.yml)")
    p = sub.add_parser("hook", help="install a git post-receive hook that notifies the master")
    p.add_argument("action", choices=["install"])
    p.add_argument("repo", metavar="REPO", help="git repository (bare or not) pushed to")
    p.add_argument("--url", metavar="URL", help="master web URL (default: from the settings)")
    p.add_argument("--basedir", metavar="DIR", help="master directory (default: .buildbot "
                   "next to matrix.yml)")
    p.add_argument("--force", action="store_true", help="replace an existing post-receive")


def _tool(name: str) -> str:
    here = Path(sys.executable).parent / name
    found = str(here) if here.exists() else shutil.which(name)
    if not found:
        raise PipelineError(f"{name} is not installed: pip install 'kmatrix[buildbot]'")
    return found


def _paths(args: argparse.Namespace) -> tuple[Path, Path]:
    matrix = find_matrix(explicit=getattr(args, "matrix", None))
    basedir = Path(args.basedir).resolve() if args.basedir else matrix.parent / ".buildbot"
    return matrix, basedir


def _env(matrix: Path, basedir: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["KMATRIX_BUILDBOT_DIR"] = str(basedir)
    env["KMATRIX_MATRIX"] = str(matrix)
    return env


def read_pid(directory: Path) -> int | None:
    """The pid in directory/twistd.pid if that process is alive and is a twistd/buildbot."""
    try:
        pid = int((directory / "twistd.pid").read_text().strip())
    except (OSError, ValueError):
        return None
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
    except OSError:
        return None
    return pid if b"twistd" in cmdline or b"buildbot" in cmdline else None


def _stop(directory: Path, what: str, timeout: float | None = None) -> bool:
    """SIGTERM the twistd of `directory`, SIGKILL if it is still there after `timeout`;
    say which. False if it was not running."""
    pid = read_pid(directory)
    if pid is None:
        return False
    timeout = stop_timeout() if timeout is None else timeout
    started = time.monotonic()
    os.kill(pid, signal.SIGTERM)
    while pid_alive(pid) and time.monotonic() - started < timeout:
        time.sleep(0.2)
    if pid_alive(pid):
        os.kill(pid, signal.SIGKILL)
        while pid_alive(pid) and time.monotonic() - started < timeout + 10:
            time.sleep(0.1)
        print(f"{what} (pid {pid}) did not stop within {timeout:.0f} s of SIGTERM: killed")
    else:
        print(f"stopped {what} (pid {pid}) in {time.monotonic() - started:.1f} s")
    return True


def stop_timeout() -> float:
    """Seconds a process gets after SIGTERM ($KMATRIX_BB_STOP_TIMEOUT, default 60)."""
    try:
        return max(1.0, float(os.environ.get("KMATRIX_BB_STOP_TIMEOUT", "60")))
    except ValueError:
        return 60.0


def _run(cmd: list[str], env: dict[str, str], what: str) -> None:
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise PipelineError(f"{what} failed ({proc.returncode}): "
                            f"{config_errors(proc.stdout + proc.stderr)[-2000:]}")


def config_errors(output: str) -> str:
    """Buildbot's own "Configuration Errors:" list when there is one (not the traceback
    before it), without the per-builder echoes of an error kmatrix already explained."""
    text = output.strip()
    if "Configuration Errors:" not in text:
        return text
    lines = text[text.index("Configuration Errors:"):].splitlines()
    explained = any("kmatrix: no worker can run" in line for line in lines)
    return "\n".join(line for line in lines if not (
        explained and "at least one workername is required" in line))


def master_config_file(matrix: Path, basedir: Path) -> Path:
    """The project's master.cfg, else a generated one inside the master directory."""
    project = matrix.parent / "master.cfg"
    if project.is_file():
        return project
    generated = basedir / "master.cfg"
    generated.write_text(
        "# generated by `pipeline master start`: the project has no master.cfg\n"
        "from pipeline.buildbot.config import build_config\n"
        f"BuildmasterConfig = c = build_config(basedir={str(basedir)!r}, "
        f"matrix={str(matrix)!r})\n")
    return generated


def start(matrix: Path, basedir: Path) -> int:
    from pipeline.buildbot.settings import LOCAL_WORKER, load_settings

    env = _env(matrix, basedir)
    basedir.mkdir(parents=True, exist_ok=True)
    settings = load_settings(basedir)
    if read_pid(basedir) is None:
        config = master_config_file(matrix, basedir)
        if not (basedir / "buildbot.tac").is_file():
            _run([_tool("buildbot"), "create-master", "-r", "--db", settings.db_url,
                  "--config", str(config), str(basedir)], env, "buildbot create-master")
        _run([_tool("buildbot"), "checkconfig", str(basedir)], env, "buildbot checkconfig")
        _run([_tool("buildbot"), "start", str(basedir)], env, "buildbot start")
        print(f"master started (pid {read_pid(basedir)}) in {basedir}")
    else:
        print(f"master already running (pid {read_pid(basedir)})")
    if settings.local_worker:
        wdir = settings.local_worker_dir
        if read_pid(wdir) is None:
            password = next(w.password for w in settings.workers if w.name == LOCAL_WORKER)
            _run([_tool("buildbot-worker"), "create-worker", "--force", "-r", "--umask=0o022",
                  str(wdir), f"{settings.connect_host}:{settings.pb_port}", LOCAL_WORKER,
                  password],
                 env, "buildbot-worker create-worker")
            _run([_tool("buildbot-worker"), "start", str(wdir)], env, "buildbot-worker start")
            print(f"local worker started (pid {read_pid(wdir)}) in {wdir}")
        else:
            print(f"local worker already running (pid {read_pid(wdir)})")
    print(f"web UI: {settings.www_url}")
    print(f"matrix: {settings.www_url}#/matrix")
    if settings.auth_required:
        print(f"login required for force builds and other control actions: users in "
              f"{settings.users_path}; the change hook needs the secret in "
              f"{settings.hook_secret_path} (or $KMATRIX_BB_HOOK_SECRET)")
    else:
        print(f"bound to {settings.bind}: no login needed (loopback only)")
    return EXIT_OK


def stop(basedir: Path) -> int:
    """Interrupt the running builds (their jobs stop their containers and VMs and upload
    what they have), stop the master, then the local worker."""
    from pipeline.buildbot.api import MasterApi

    pid = read_pid(basedir)
    if pid is not None:
        api = MasterApi.for_master(basedir)
        stopped = api.stop_running_builds("pipeline master stop", stop_timeout())
        if stopped is None:
            print("the master's web API did not answer: running builds were not stopped")
        elif stopped:
            print(f"interrupted {len(stopped)} running build(s): {', '.join(stopped)}")
    master = _stop(basedir, "master")
    worker = _stop(basedir / "worker", "local worker")
    if not (master or worker):
        print("nothing was running")
    return EXIT_OK


def status(basedir: Path) -> int:
    """What runs, asked of the master's web API: a master that does not answer is not
    running (exit 1), whatever its pid file says."""
    from pipeline.buildbot.api import MasterApi

    master, worker = read_pid(basedir), read_pid(basedir / "worker")
    local = f"running (pid {worker})" if worker else "stopped"
    if not master:
        print(f"master: stopped  ({basedir})")
        print(f"local worker: {local}")
        return EXIT_FAILED
    api = MasterApi.for_master(basedir)
    workers = api.workers()
    if workers is None:
        print(f"master: not answering on {api.url} (pid {master}): frozen or starting")
        print(f"local worker: {local}")
        return EXIT_FAILED
    print(f"master: running (pid {master}), web UI {api.url}  ({basedir})")
    print(f"local worker: {local}")
    for name, connected in sorted(workers.items()):
        print(f"worker {name}: {'connected' if connected else 'not connected'}")
    return EXIT_OK


def cmd_master(args: argparse.Namespace) -> int:
    matrix, basedir = _paths(args)
    if args.action == "start":
        return start(matrix, basedir)
    if args.action == "stop":
        return stop(basedir)
    if args.action == "reconfig":
        _run([_tool("buildbot"), "reconfig", str(basedir)], _env(matrix, basedir),
             "buildbot reconfig")
        print("master reconfigured from", matrix)
        return EXIT_OK
    return status(basedir)


def hook_script(url: str, secret_file: Path | None = None) -> str:
    """post-receive: POST to the master's poller change hook; never fails the push.

    The shared secret (an exposed master requires it) is read at push time from
    $KMATRIX_BB_HOOK_SECRET or `secret_file`, never written into the hook, and sent as
    HTTP basic auth."""
    from pipeline.buildbot.settings import HOOK_USER

    return f"""#!/bin/sh
# {HOOK_MARK}: tells the kmatrix Buildbot master to poll
# the repository now (its GitPoller turns the new commits into changes).
exec {sys.executable} - <<'PY'
import base64, os, urllib.request
url = {url!r}
secret_file = {str(secret_file) if secret_file else None!r}
secret = os.environ.get("KMATRIX_BB_HOOK_SECRET", "").strip()
if not secret and secret_file:
    try:
        with open(secret_file) as handle:
            secret = handle.read().strip()
    except OSError:
        pass
headers = {{}}
if secret:
    token = base64.b64encode(({HOOK_USER!r} + ":" + secret).encode()).decode()
    headers["Authorization"] = "Basic " + token
try:
    request = urllib.request.Request(url, data=b"", headers=headers)
    urllib.request.urlopen(request, timeout=10).read()
    print("kmatrix: Buildbot master notified")
except Exception as exc:
    print(f"kmatrix: could not notify {{url}}: {{exc}} (its poller will see the push later)")
PY
"""


def install_hook(repo: Path, url: str, force: bool = False,
                 secret_file: Path | None = None) -> Path:
    proc = subprocess.run(["git", "-C", str(repo), "rev-parse", "--git-path", "hooks"],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        raise InputError(f"{repo}: not a git repository", hint=proc.stderr.strip())
    hooks = Path(proc.stdout.strip())
    if not hooks.is_absolute():
        hooks = (repo / hooks).resolve()
    hooks.mkdir(parents=True, exist_ok=True)
    hook = hooks / "post-receive"
    if hook.exists() and HOOK_MARK not in hook.read_text(errors="replace") and not force:
        raise InputError(f"{hook} exists and is not ours", hint="pass --force to replace it")
    hook.write_text(hook_script(url, secret_file))
    hook.chmod(0o755)
    return hook


def cmd_hook(args: argparse.Namespace) -> int:
    from pipeline.buildbot.settings import SETTINGS_NAME, load_settings

    _, basedir = _paths(args)
    repo = Path(args.repo).resolve()
    basedir.mkdir(parents=True, exist_ok=True)
    settings = load_settings(basedir, create_secrets=False)
    base = args.url or settings.www_url
    url = base.rstrip("/") + "/change_hook/poller?poller=kmatrix"
    hook = install_hook(repo, url, args.force, settings.hook_secret_path)
    print(f"installed {hook} -> {url}")
    if not settings.repo:
        with open(basedir / SETTINGS_NAME, "a") as handle:
            handle.write(f"repo: {str(repo)!r}\n")
        print(f"the master now watches {repo} (set in {basedir / SETTINGS_NAME}); "
              "run `pipeline master reconfig` if it is running")
    return EXIT_OK
