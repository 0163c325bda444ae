"""A Buildbot master and workers that share no disk, for tests and benchmarks.

The master runs as root with its directory 0700; each worker runs as its own user from
its own kmatrix install (workers.py); the repository reaches them over git:// on
127.0.0.1. stop() ends exactly what start() started and removes the containers that
jobs of killed workers left running (those that mount the cluster's directories).
"""

from __future__ import annotations

import hashlib
import os
import subprocess
from pathlib import Path

from tests.buildbot_harness import MasterHarness
from tests.support.workers import GitServer, TestWorker, shared_root, worker_venv

ROOT = Path(__file__).resolve().parents[2]


class Cluster:
    """A master (root, its directory 0700), a git server, and workers as their own users."""

    def __init__(self, tmp: Path, matrix: str, workers: dict[str, list[str]],
                 settings: str = "") -> None:
        self.root = shared_root("kmatrix-cluster-")
        self.git = GitServer(tmp)
        self.master = MasterHarness(tmp, ROOT, matrix, settings="local_worker: false\n")
        os.chmod(tmp, 0o700)
        passwords = {name: hashlib.sha256(os.urandom(16)).hexdigest() for name in workers}
        lines = [f"repo: {self.git.url('origin.git')}\n{settings}workers:\n"]
        for name, caps in workers.items():
            secret = self.master.basedir / f"{name}.pass"
            secret.write_text(passwords[name] + "\n")
            secret.chmod(0o600)
            lines.append(f"  - {{name: {name}, password_file: {secret}, max_builds: 1, "
                         f"capabilities: [{', '.join(caps)}]}}\n")
        with open(self.master.basedir / "kmatrix.yml", "a") as handle:
            handle.write("".join(lines))
        venv = worker_venv()
        self.workers = {name: TestWorker(name, f"kmx-{name}", self.root, venv)
                        for name in workers}
        self.passwords = passwords

    def start(self) -> Cluster:
        self.git.start()
        self.master.start()
        for name, worker in self.workers.items():
            worker.create(f"127.0.0.1:{self.master.pb_port}", self.passwords[name])
            worker.start()
        self.master.wait_for(lambda: self.master.connected_workers() >= set(self.workers),
                             60, f"workers {sorted(self.workers)} to connect")
        return self

    def stop(self) -> None:
        for worker in self.workers.values():
            worker.stop()
        self.master.stop()
        self.git.stop()
        remove_containers_under(self.root)
        subprocess.run(["rm", "-rf", str(self.root)], check=False)

    def worker_of(self, build: dict) -> str:
        workers = {w["workerid"]: w["name"] for w in self.master.api("workers")["workers"]}
        return workers[build["workerid"]]

    def builder_dir(self, worker: str, job_id: str) -> Path:
        """The worker-side directory of a builder (Buildbot's builddir, as it reported)."""
        builder = self.master.builders()[job_id]
        props = self.master.api(f"builders/{builder['builderid']}/builds?order=-number"
                                "&limit=1&property=builddir")["builds"][0]["properties"]
        path = Path(props["builddir"][0])
        assert path.is_relative_to(self.workers[worker].basedir), path
        return path


def containers_under(root: Path) -> list[str]:
    """Ids of the containers that mount something below `root` (ours, by construction)."""
    import docker

    return [c.id for c in docker.from_env().containers.list(all=True)
            if any(str(m.get("Source", "")).startswith(str(root))
                   for m in c.attrs.get("Mounts") or [])]


def remove_containers_under(root: Path) -> None:
    """Containers a killed worker's jobs left running: those that mount our directory."""
    import docker

    client = docker.from_env()
    for cid in containers_under(root):
        client.containers.get(cid).remove(force=True)
