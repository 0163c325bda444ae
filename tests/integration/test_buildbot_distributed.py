"""Buildbot across machines, with real processes: a master and workers that share no disk.

Each worker runs as its own unprivileged user (in the docker group) from its own kmatrix
install (tests/support/workers.py), in a base directory only it can read; the master's
directory is root's alone (0700). The repository reaches the workers over git://
(127.0.0.1). Everything a build needs or produces moves through Buildbot.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.buildbot_harness import MasterHarness
from tests.conftest import ROOT, docker_available
from tests.support.cluster import Cluster, containers_under, remove_containers_under
from tests.support.postgres import PostgresServer
from tests.support.workers import TestWorker, shared_root

pytestmark = [pytest.mark.docker, pytest.mark.slow,
              pytest.mark.skipif(not docker_available(), reason="Docker Engine not reachable")]

KMOD_BUILD = """\
  kmod-build:
    kind: kmod-build
    env: {EXTRA_TARGETS: tests/ioctl_smoke}
"""
MATRIX = """\
version: 1
defaults: {timeout: 900, image-base: mmdebstrap}
kernels:
  "6.1": {suite: bookworm}
jobs:
""" + KMOD_BUILD + """\
  vm-test:
    over: [kernel]
    needs: [kmod-build]
    inputs: ["kernel/**"]
    timeout: 300
    vm:
      modules: [$NEEDS/kmod-build/$KERNEL/vexfs.ko]
      files:
        /tests/run-ktap.sh: $SRC/kernel/tests/run-ktap.sh
        /tests/ioctl_smoke: $NEEDS/kmod-build/$KERNEL/ioctl_smoke
      command: sh /tests/run-ktap.sh /lib/modules-test/vexfs.ko
      test-timeout: 60
"""
SLOW_MATRIX = """\
version: 1
defaults: {timeout: 900, image-base: mmdebstrap}
kernels:
  "6.1": {suite: bookworm}
jobs:
  kmod-build:
    over: [kernel]
    image: kbuild
    inputs: ["kernel/**"]
    steps:
      - name: build
        results: build
        run: |
          sleep 25   # long enough to lose the worker in the middle
          cp -a "$SRC/kernel/." "$WORK/module"
          make -C "$WORK/module" KDIR="$KDIR"
          cp "$WORK"/module/*.ko "$OUT/"
"""
RETRY = 5  # Buildbot's RETRY result


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def cannot_read(worker: TestWorker, path: Path) -> bool:
    return worker.as_user("ls", str(path), check=False).returncode != 0


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    cluster = Cluster(tmp_path_factory.mktemp("dist"), MATRIX,
                      {"builder": ["docker"], "vmrunner": ["qemu"]})
    try:
        yield cluster.start()
    finally:
        cluster.stop()


def test_two_workers_share_nothing(cluster: Cluster) -> None:
    master = cluster.master
    revision, _, _ = master.commit_and_push({"kernel/README.kmatrix-test": "x\n"}, "touch")
    builds = master.wait_complete(revision, {"kmod-build/6.1", "vm-test/6.1"}, timeout=900)
    build, vm = builds["kmod-build/6.1"], builds["vm-test/6.1"]
    assert (build["results"], vm["results"]) == (0, 0), master.master_log()[-3000:]
    assert cluster.worker_of(build) == "builder" and cluster.worker_of(vm) == "vmrunner"

    builder, vmrunner = cluster.workers["builder"], cluster.workers["vmrunner"]
    # nothing is shared: neither worker can read the master's directory or the other's
    for worker, other in ((builder, vmrunner), (vmrunner, builder)):
        assert cannot_read(worker, master.basedir)
        assert cannot_read(worker, master.basedir / "results")
        assert cannot_read(worker, other.basedir)
    # the .ko the VM loaded came from the builder through the master
    results = master.basedir / "results" / revision
    on_master = results / "kmod-build/6.1/artifacts/vexfs.ko"
    built = cluster.builder_dir("builder", "kmod-build/6.1") / "out/kmod-build/6.1"
    used = cluster.builder_dir("vmrunner", "vm-test/6.1") / "needs/kmod-build/6.1"
    assert sha256(on_master) == sha256(built / "artifacts/vexfs.ko") == sha256(
        used / "artifacts/vexfs.ko")
    assert os.access(used / "artifacts/ioctl_smoke", os.X_OK)  # modes survive the trip
    assert (used / "artifacts/ioctl_smoke").stat().st_uid == vmrunner.account.pw_uid
    # the master holds every job's results, and the reports read them from there
    junit = (results / "vm-test/6.1/junit.xml").read_text()
    assert "insmod" in junit and "failures=\"0\"" in junit
    sets = master.api(f"builds/{vm['buildid']}/test_result_sets")["test_result_sets"]
    assert sets and sets[0]["tests_passed"] >= 30 and sets[0]["tests_failed"] == 0
    assert "ioctl_smoke" in junit  # the static test that came as a need's artifact


def test_failed_need_is_skipped(cluster: Cluster) -> None:
    master = cluster.master
    revision, _, _ = master.commit_and_push(
        {"kernel/vexfs_main.c": "\nthis is not C;\n"}, "kernel: break the module")
    builds = master.wait_complete(revision, {"kmod-build/6.1", "vm-test/6.1"}, timeout=600)
    assert builds["kmod-build/6.1"]["results"] == 2  # FAILURE: the root cause, red
    vm = builds["vm-test/6.1"]
    assert vm["results"] == 3, vm  # SKIPPED, not FAILURE
    assert "needs failed: kmod-build/6.1" in vm["state_string"]
    steps = master.api(f"builds/{vm['buildid']}/steps")["steps"]
    ran = [s["name"] for s in steps if s["results"] != 3]
    assert ran == ["worker_preparation"], ran  # nothing ran on the worker
    assert next(s["name"] for s in steps if s["results"] == 3) == "needs"
    # the branch's state on the web: the cause, and the skipped cell pointing at it
    state = json.loads(master.get("plugins/wsgi_dashboards/matrix/api/branch/main"))
    cells = {c["job"]: c for c in state["cells"]}
    assert state["head"] == revision and state["status"] == "failed"
    assert (cells["kmod-build/6.1"]["status"], cells["vm-test/6.1"]["status"]) == (
        "failed", "skipped")
    assert cells["vm-test/6.1"]["message"] == "skipped: needs failed: kmod-build/6.1"
    assert cells["kmod-build/6.1"]["broken_since"] == f"{revision[:10]}: kernel: break the module"
    assert [h["status"] for h in cells["kmod-build/6.1"]["history"]] == ["failed", "passed"]
    assert cells["kmod-build/6.1"]["failing"][0]["name"] == "kmod-build/6.1.build"


def test_worker_lost_mid_build_is_retried_elsewhere(tmp_path_factory) -> None:
    cluster = Cluster(tmp_path_factory.mktemp("lost"), SLOW_MATRIX,
                      {"alpha": ["docker"], "beta": ["docker"]})
    try:
        cluster.start()
        master = cluster.master
        revision, _, _ = master.commit_and_push({"kernel/README.kmatrix-test": "y\n"},
                                                "touch")

        def job_step_running() -> dict | None:
            build = master.builds_for(revision).get("kmod-build/6.1")
            if not build:
                return None
            steps = master.api(f"builds/{build['buildid']}/steps")["steps"]
            job = [s for s in steps if s["name"] == "job" and s["started_at"]]
            return build if job else None

        first = master.wait_for(job_step_running, 300, "the job step to start", every=0.5)
        lost = cluster.worker_of(first)
        survivor = next(name for name in cluster.workers if name != lost)
        time.sleep(3)  # the container is running now
        cluster.workers[lost].kill()

        req = master.requests_for(revision)["kmod-build/6.1"]
        master.wait_for(lambda: master.requests_for(revision)["kmod-build/6.1"]["complete"],
                        600, "the retried build", every=1.0)
        builds = master.api(f"buildrequests/{req['buildrequestid']}/builds")["builds"]
        assert [b["results"] for b in builds] == [RETRY, 0], builds
        assert cluster.worker_of(builds[-1]) == survivor
        job = master.basedir / "results" / revision / "kmod-build/6.1"
        assert "failures=\"0\"" in (job / "junit.xml").read_text()
        assert (job / "artifacts/vexfs.ko").stat().st_size > 0

        # a passed key is never rebuilt: the lost worker comes back alone and gets it
        cluster.workers[survivor].stop()
        remove_containers_under(cluster.workers[lost].basedir)
        cluster.workers[lost].start()
        master.wait_for(lambda: master.connected_workers() == {lost}, 60, "the worker back")
        builder = master.builders()["kmod-build/6.1"]
        reply = master.rpc("forceschedulers/kmatrix-force", "force",
                           builderid=builder["builderid"], kernel="6.1", features="all",
                           job="kmod-build", reason="rebuild", username="t <t@example.com>",
                           branch="main", revision=revision, repository="", project="")
        assert "error" not in reply, reply
        bsid = reply["result"][0]
        master.wait_for(lambda: all(r["complete"] for r in master.api(
            f"buildrequests?buildsetid={bsid}")["buildrequests"]), 300, "the forced build")
        (request,) = master.api(f"buildrequests?buildsetid={bsid}")["buildrequests"]
        (again,) = master.api(f"buildrequests/{request['buildrequestid']}/builds")["builds"]
        assert again["results"] == 0 and cluster.worker_of(again) == lost
        log = (job / "log.txt").read_text()
        assert log.startswith("== cached: ") and "no container or VM was started" in log
        assert again["complete_at"] - again["started_at"] < 25  # no 25 s sleep ran
        state = json.loads(master.get("plugins/wsgi_dashboards/matrix/api/branch/main"))
        (cell,) = [c for c in state["cells"] if c["job"] == "kmod-build/6.1"]
        assert (cell["status"], cell["commit"]) == ("cached", revision)
    finally:
        cluster.stop()


PG_MATRIX = """\
version: 1
defaults: {timeout: 900, image-base: mmdebstrap}
kernels:
  "6.1": {suite: bookworm}
jobs:
""" + KMOD_BUILD


def test_master_on_postgresql(tmp_path_factory) -> None:
    with PostgresServer(shared_root("kmatrix-pg-")) as pg:
        master = MasterHarness(tmp_path_factory.mktemp("pg"), ROOT, PG_MATRIX,
                               settings=f"db_url: {pg.url}\n")
        try:
            master.start()
            revision, _, _ = master.commit_and_push({"kernel/README.kmatrix-test": "z\n"},
                                                    "touch")
            builds = master.wait_complete(revision, {"kmod-build/6.1"}, timeout=600)
            build = builds["kmod-build/6.1"]
            assert build["results"] == 0, master.master_log()[-3000:]
            sets = master.api(f"builds/{build['buildid']}/test_result_sets")
            assert sets["test_result_sets"][0]["tests_passed"] >= 1
            # the rows are in PostgreSQL, not in a sqlite file
            assert int(pg.query("select count(*) from builds")) >= 1
            assert int(pg.query("select count(*) from test_results")) >= 1
            assert pg.query(f"select revision from sourcestamps where revision = "
                            f"'{revision}'") == revision
            assert not (master.basedir / "state.sqlite").exists()
        finally:
            master.stop()


def test_master_control_tells_the_truth(tmp_path_factory) -> None:
    """status asks the web API; stop interrupts builds cleanly and says when it killed."""
    master = MasterHarness(tmp_path_factory.mktemp("control"), ROOT, SLOW_MATRIX)
    try:
        master.start()
        status = master.cli("master", "status")
        assert "master: running" in status.stdout and "worker local: connected" in status.stdout
        revision, _, _ = master.commit_and_push({"kernel/README.kmatrix-test": "c\n"}, "c")

        def job_running() -> bool:
            build = master.builds_for(revision).get("kmod-build/6.1")
            steps = master.api(f"builds/{build['buildid']}/steps")["steps"] if build else []
            return any(s["name"] == "job" and s["started_at"] for s in steps)

        master.wait_for(job_running, 300, "the job step to start", every=0.5)
        time.sleep(2)
        pid = int((master.basedir / "twistd.pid").read_text())
        os.kill(pid, signal.SIGSTOP)  # a frozen master is not "running"
        try:
            frozen = master.cli("master", "status", check=False)
        finally:
            os.kill(pid, signal.SIGCONT)
        assert frozen.returncode == 1 and "not answering" in frozen.stdout, frozen.stdout

        stop = master.cli("master", "stop")
        master.started = False
        assert "interrupted 1 running build(s): kmod-build/6.1 #1" in stop.stdout, stop.stdout
        assert re.search(r"stopped master \(pid \d+\) in", stop.stdout)
        assert "stopped local worker" in stop.stdout and "killed" not in stop.stdout
        meta = master.basedir / "results" / revision / "kmod-build/6.1" / "metadata.json"
        assert json.loads(meta.read_text())["status"] == "interrupted"  # uploaded, kept
        assert not containers_under(master.tmp)
        down = master.cli("master", "status", check=False)
        assert down.returncode == 1 and "master: stopped" in down.stdout

        master.start()  # a master that ignores SIGTERM is killed, and the user is told
        pid = int((master.basedir / "twistd.pid").read_text())
        os.kill(pid, signal.SIGSTOP)
        proc = subprocess.run([sys.executable, "-m", "pipeline", "--matrix",
                               str(master.project / "matrix.yml"), "master", "stop"],
                              capture_output=True, text=True, timeout=120,
                              env={**os.environ, "KMATRIX_BB_STOP_TIMEOUT": "2"})
        master.started = False
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert f"master (pid {pid}) did not stop within 2 s of SIGTERM: killed" in proc.stdout
        assert gone(pid)
    finally:
        master.stop()


def gone(pid: int) -> bool:
    """Not running: no such process, or a zombie nobody reaped (this machine's pid 1)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True
