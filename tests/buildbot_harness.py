"""A throwaway master for tests and benchmarks: a project copy in a git repository, a bare
`origin` with the post-receive hook, a master + local worker on free loopback ports.

Used by tests/integration/test_buildbot.py, test_buildbot_bench.py and test_faults.py, and by
tests/e2e/test_dashboard_browser.py; it drives the real CLI (`pipeline master start|stop`,
`pipeline hook install`) and talks to the real REST API, so it exercises what a user runs.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

PROJECT_PARTS = ("matrix.lock", "kernel", "userspace", "master.cfg")
IGNORE = shutil.ignore_patterns("target", "*.o", "*.ko", "*.mod*", ".*.cmd", "Module.symvers",
                                "modules.order")
GIT = ["git", "-c", "user.name=kmatrix-test", "-c", "user.email=test@kmatrix.invalid",
       "-c", "init.defaultBranch=main"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class MasterHarness:
    """Project copy + origin.git + running master/worker. Call stop() in a finalizer."""

    def __init__(self, tmp: Path, source_root: Path, matrix_text: str,
                 settings: str = "") -> None:
        self.tmp = Path(tmp)
        self.project = self.tmp / "project"
        self.origin = self.tmp / "origin.git"
        self.basedir = self.project / ".buildbot"
        self.project.mkdir(parents=True)
        for part in PROJECT_PARTS:
            src = Path(source_root) / part
            if src.is_dir():
                shutil.copytree(src, self.project / part, copy_function=shutil.copy,
                                ignore=IGNORE)
            elif src.is_file():
                shutil.copy(src, self.project / part)
        (self.project / "matrix.yml").write_text(matrix_text)
        (self.project / ".gitignore").write_text("/.buildbot/\n")
        self.git("init", "-q")
        self.git("add", "-A")
        self.git("commit", "-qm", "initial")
        subprocess.run([*GIT, "clone", "-q", "--bare", str(self.project), str(self.origin)],
                       check=True)
        self.git("remote", "add", "origin", str(self.origin))
        self.www_port, self.pb_port = free_port(), free_port()
        self.basedir.mkdir()
        (self.basedir / "kmatrix.yml").write_text(
            f"www_port: {self.www_port}\npb_port: {self.pb_port}\n{settings}")
        self.local_worker = "local_worker: false" not in settings
        self.url = f"http://127.0.0.1:{self.www_port}/"
        self.started = False

    # -- processes ---------------------------------------------------------------------
    def cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run([sys.executable, "-m", "pipeline", "--matrix",
                               str(self.project / "matrix.yml"), *args], text=True,
                              capture_output=True, timeout=300)
        if check and proc.returncode != 0:
            raise AssertionError(f"pipeline {' '.join(args)} exited {proc.returncode}:\n"
                                 f"{proc.stdout}\n{proc.stderr}")
        return proc

    def start(self, poller: bool = True) -> None:
        """Start master and worker; `poller`: the origin's post-receive hook and the
        GitPoller's first poll (a master with a `forge:` gets changes from webhooks)."""
        if poller:
            self.cli("hook", "install", str(self.origin))
        self.started = True
        out = self.cli("master", "start")
        assert self.url in out.stdout, out.stdout
        if self.local_worker:
            self.wait_for(lambda: self.worker_connected(), 60, "the local worker to connect")
        if poller:  # the first poll records the branch heads (and starts no build)
            self.wait_for(lambda: "gitpoller: processing changes" in self.master_log(), 60,
                          "the first poll")

    def stop(self) -> None:
        if self.started:
            self.cli("master", "stop", check=False)
            self.started = False

    def master_log(self) -> str:
        path = self.basedir / "twistd.log"
        return path.read_text(errors="replace") if path.is_file() else ""

    # -- git -------------------------------------------------------------------------------
    def git(self, *args: str) -> str:
        return subprocess.run([*GIT, "-C", str(self.project), *args], check=True, text=True,
                              capture_output=True).stdout.strip()

    def commit_and_push(self, files: dict[str, str], message: str) -> tuple[str, float, str]:
        """Append to files, commit, push to origin; (revision, push start time, push output)."""
        for name, text in files.items():
            path = self.project / name
            path.parent.mkdir(parents=True, exist_ok=True)
            with open(path, "a") as handle:
                handle.write(text)
        self.git("add", "-A")
        self.git("commit", "-qm", message)
        revision = self.git("rev-parse", "HEAD")
        pushed = time.time()
        proc = subprocess.run([*GIT, "-C", str(self.project), "push", "origin", "main"],
                              text=True, capture_output=True, check=True)
        return revision, pushed, proc.stdout + proc.stderr

    # -- REST API --------------------------------------------------------------------------
    def api(self, path: str) -> Any:
        with urllib.request.urlopen(self.url + "api/v2/" + path.lstrip("/"), timeout=30) as r:
            return json.load(r)

    def rpc(self, path: str, method: str, **params: Any) -> Any:
        body = json.dumps({"jsonrpc": "2.0", "method": method, "id": 1,
                           "params": params}).encode()
        req = urllib.request.Request(self.url + "api/v2/" + path.lstrip("/"), data=body,
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=30) as r:
            return json.load(r)

    def get(self, path: str) -> str:
        with urllib.request.urlopen(self.url + path.lstrip("/"), timeout=30) as r:
            return r.read().decode()

    def worker_connected(self) -> bool:
        try:
            workers = self.api("workers")["workers"]
        except OSError:
            return False
        return any(w["connected_to"] for w in workers)

    def connected_workers(self) -> set[str]:
        """Names of the workers connected to the master now."""
        try:
            workers = self.api("workers")["workers"]
        except OSError:
            return set()
        return {w["name"] for w in workers if w["connected_to"]}

    def builders(self, active: bool = True) -> dict[str, dict[str, Any]]:
        return {b["name"]: b for b in self.api("builders")["builders"]
                if b["masterids"] or not active}

    def requests_for(self, revision: str) -> dict[str, dict[str, Any]]:
        """{builder name: newest build request} over the buildsets of this revision."""
        names = {b["builderid"]: b["name"] for b in self.api("builders")["builders"]}
        bsids = [bs["bsid"] for bs in self.api("buildsets")["buildsets"]
                 if any(ss["revision"] == revision for ss in bs["sourcestamps"])]
        out: dict[str, dict[str, Any]] = {}
        for bsid in bsids:
            for req in self.api(f"buildrequests?buildsetid={bsid}")["buildrequests"]:
                out[names[req["builderid"]]] = req
        return out

    def builds_for(self, revision: str) -> dict[str, dict[str, Any]]:
        out = {}
        for name, req in self.requests_for(revision).items():
            builds = self.api(f"buildrequests/{req['buildrequestid']}/builds")["builds"]
            if builds:
                out[name] = builds[-1]
        return out

    def wait_for(self, predicate: Any, timeout: float, what: str, every: float = 0.1) -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = predicate()
            if value:
                return value
            time.sleep(every)
        raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}\n"
                             f"master log tail:\n{self.master_log()[-4000:]}")

    def wait_complete(self, revision: str, names: set[str], timeout: float = 600) -> dict:
        def done() -> dict | None:
            reqs = self.requests_for(revision)
            if names <= set(reqs) and all(reqs[n]["complete"] for n in names):
                return self.builds_for(revision)
            return None

        return self.wait_for(done, timeout, f"builds of {sorted(names)} on {revision[:12]}",
                             every=1.0)
