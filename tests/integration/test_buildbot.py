"""Buildbot integration with real processes: master + worker, git push, Docker builds.

One module-scoped master serves the tests (its start takes seconds, the builds longer);
each test pushes its own commit and checks what the REST API shows for that revision.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("buildbot", reason="pip install -e '.[buildbot]'")
pytest.importorskip("buildbot_worker", reason="pip install -e '.[buildbot]'")

from tests.buildbot_harness import MasterHarness
from tests.conftest import ROOT, docker_available

MATRIX = """\
version: 1
defaults:
  timeout: 900
  image-base: mmdebstrap
kernels:
  "6.1": {suite: bookworm}
features:
  default: {}
jobs:
  kmod-build:
    over: [kernel]
    image: kbuild
    inputs: ["kernel/**"]
    steps:
      - name: build
        results: build
        run: |
          cp -a "$SRC/kernel/." "$WORK/kernel"
          make -C "$WORK/kernel" KDIR="$KDIR"
          cp "$WORK"/kernel/*.ko "$OUT/"
  kmod-check:                  # stands in for the VM tests: it needs kmod-build's module
    over: [kernel]
    image: kbuild
    needs: [kmod-build]
    inputs: ["kernel/**"]
    steps:
      - name: modinfo
        run: |
          ls -l "$NEEDS/kmod-build/$KERNEL/"
          modinfo "$NEEDS/kmod-build/$KERNEL"/*.ko | tee "$OUT/modinfo.txt"
  crate-test:
    over: [features]
    image: rust
    inputs: ["userspace/**"]
    steps:
      - name: fetch
        network: true
        run: cargo fetch --locked --manifest-path "$SRC/userspace/Cargo.toml"
      - name: test
        results: libtest
        run: >-
          cargo test --offline --locked $CARGO_FEATURE_ARGS
          --manifest-path "$SRC/userspace/Cargo.toml" --lib
          -- -Z unstable-options --format json --report-time
"""


def _bb(*args: str, cwd: Path, env: dict[str, str] | None = None):
    import os

    tool = Path(sys.executable).parent / "buildbot"
    return subprocess.run([str(tool), *args], cwd=cwd, capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=120)


def test_checkconfig_of_the_repository_master_cfg(tmp_path):
    """The repository's own master.cfg on its real matrix.yml (no processes started)."""
    proc = _bb("checkconfig", str(ROOT / "master.cfg"), cwd=ROOT,
               env={"KMATRIX_BUILDBOT_DIR": str(tmp_path / "bb")})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Config file is good" in proc.stdout


@pytest.fixture(scope="module")
def master(tmp_path_factory):
    if not docker_available():
        pytest.skip("Docker is not available")
    harness = MasterHarness(tmp_path_factory.mktemp("bb"), ROOT, MATRIX)
    try:
        harness.start()
        yield harness
    finally:
        harness.stop()


def _steps(master, build):
    return master.api(f"builds/{build['buildid']}/steps")["steps"]


@pytest.mark.docker
@pytest.mark.slow
def test_kernel_push_builds_needs_in_order_with_results(master):
    revision, pushed, output = master.commit_and_push(
        {"kernel/README.kmatrix-test": "kernel change\n"}, "kernel: touch")
    assert "master notified" in output
    first = master.wait_for(lambda: master.builds_for(revision), 30, "the first build")
    latency = min(b["started_at"] for b in first.values()) - pushed
    seen = time.time() - pushed
    print(f"\nBENCH push-to-build-start: {max(latency, 0):.2f} s (started_at, 1 s "
          f"resolution); first build visible in the API after {seen:.2f} s")

    builds = master.wait_complete(revision, {"kmod-build/6.1", "kmod-check/6.1"})
    assert set(master.requests_for(revision)) == {"kmod-build/6.1", "kmod-check/6.1"}
    build, check = builds["kmod-build/6.1"], builds["kmod-check/6.1"]
    assert build["results"] == 0 and check["results"] == 0, (build, check)
    # the build that needs kmod-build started only after it finished, with its module
    assert check["started_at"] >= build["complete_at"]

    steps = {s["name"]: s for s in _steps(master, check)}
    assert {"needs", "checkout", "job", "report", "step modinfo"} <= set(steps)
    assert steps["needs"]["urls"][0]["url"].endswith(
        f"/builders/{build['builderid']}/builds/{build['number']}")
    logs = {lg["name"]: lg for lg in master.api(f"steps/{steps['job']['stepid']}/logs")["logs"]}
    assert logs["log.txt"]["num_lines"] > 0
    modinfo = master.api(f"steps/{steps['step modinfo']['stepid']}/logs")["logs"][0]
    text = master.get(f"api/v2/logs/{modinfo['logid']}/raw_inline")
    assert "vermagic:" in text and "/needs/kmod-build/6.1/" in text

    sets = master.api(f"builds/{check['buildid']}/test_result_sets")["test_result_sets"]
    assert sets and sets[0]["tests_passed"] == 1 and sets[0]["tests_failed"] == 0
    results = master.api(f"test_result_sets/{sets[0]['test_result_setid']}/results")
    assert [r["value"] for r in results["test_results"]] == ["1"]
    assert results["test_results"][0]["test_name"] == "kmod-check/6.1.modinfo"
    urls = {u["name"]: u["url"] for u in steps["report"]["urls"]}
    assert "<testsuite" in master.get(urls["junit.xml"].replace(master.url, ""))

    page = master.get(f"plugins/wsgi_dashboards/matrix/index.html?revision={revision}")
    assert 'data-job="kmod-build/6.1" data-status="passed" data-result="success"' in page
    assert 'data-job="kmod-check/6.1" data-status="passed" data-result="success"' in page
    assert 'data-job="crate-test/default" data-status="absent"' in page
    # the commits strip: subject and author from Buildbot's changes, and a tally
    assert "kernel: touch" in page and "kmatrix-test" in page
    assert f'data-revision="{revision}"' in page and 'data-passed="2"' in page


@pytest.mark.docker
@pytest.mark.slow
def test_userspace_push_builds_only_crates(master):
    revision, _, _ = master.commit_and_push(
        {"userspace/README.kmatrix-test": "userspace change\n"}, "userspace: touch")
    builds = master.wait_complete(revision, {"crate-test/default"}, timeout=900)
    assert set(master.requests_for(revision)) == {"crate-test/default"}
    assert builds["crate-test/default"]["results"] == 0
    sets = master.api(f"builds/{builds['crate-test/default']['buildid']}/test_result_sets")
    passed = sum(s["tests_passed"] for s in sets["test_result_sets"])
    assert passed > 0
    page = master.get(f"plugins/wsgi_dashboards/matrix/index.html?revision={revision}")
    assert 'data-job="crate-test/default" data-status="passed" data-result="success"' in page
    assert 'data-job="kmod-build/6.1" data-status="absent"' in page


@pytest.mark.docker
@pytest.mark.slow
def test_unrelated_push_builds_nothing(master):
    revision, _, _ = master.commit_and_push({"NOTES.txt": "docs only\n"}, "docs: touch")
    master.wait_for(lambda: revision in master.master_log() or
                    master.api("changes?order=-changeid&limit=1")["changes"][0]["revision"]
                    == revision, 30, "the change")
    time.sleep(2)
    assert master.requests_for(revision) == {}


@pytest.mark.docker
@pytest.mark.slow
def test_force_build_selects_kernel_cells_and_needs(master):
    builders = master.builders()
    reply = master.rpc("forceschedulers/kmatrix-force", "force",
                       builderid=builders["kmod-check/6.1"]["builderid"],
                       kernel="6.1", features="all", job="kmod-check",
                       reason="test", username="test <test@example.com>", branch="main",
                       revision="", repository="", project="")
    assert "error" not in reply, reply
    bsid = reply["result"][0]
    names = {b["builderid"]: n for n, b in builders.items()}

    def done():
        reqs = master.api(f"buildrequests?buildsetid={bsid}")["buildrequests"]
        return reqs if reqs and all(r["complete"] for r in reqs) else None

    reqs = master.wait_for(done, 600, "the forced buildset", every=1.0)
    assert {names[r["builderid"]] for r in reqs} == {"kmod-build/6.1", "kmod-check/6.1"}
    assert all(r["results"] == 0 for r in reqs)


@pytest.mark.docker
@pytest.mark.slow
def test_editing_matrix_then_reconfig_updates_builders(master):
    matrix = master.project / "matrix.yml"
    original = matrix.read_text()
    extra = """
  kmod-lint:
    over: [kernel]
    image: kbuild
    inputs: ["kernel/**"]
    run: echo lint
"""
    try:
        matrix.write_text(original + extra)
        master.cli("master", "reconfig")
        active = master.wait_for(lambda: "kmod-lint/6.1" in master.builders() and
                                 master.builders(), 30, "the new builder")
        assert "kmod-lint" in active["kmod-lint/6.1"]["tags"]
        assert "k:6.1" in active["kmod-lint/6.1"]["tags"]
    finally:
        matrix.write_text(original)
        master.cli("master", "reconfig")
    gone = master.wait_for(lambda: "kmod-lint/6.1" not in master.builders() and
                           master.builders(), 30, "the builder to go")
    assert {"kmod-build/6.1", "kmod-check/6.1", "crate-test/default"} <= set(gone)


def test_a_matrix_no_worker_can_run_stops_the_start_with_one_message(tmp_path):
    """`pipeline master start` on a matrix whose VM tests no declared worker can run."""
    project = tmp_path / "project"
    project.mkdir()
    for part in ("matrix.yml", "matrix.lock", "kernel", "userspace"):
        src = ROOT / part
        if src.is_dir():
            shutil.copytree(src, project / part, ignore=shutil.ignore_patterns("target"))
        else:
            shutil.copy(src, project / part)
    (project / ".buildbot").mkdir()
    (project / ".buildbot" / "kmatrix.yml").write_text(
        "www_port: 18777\npb_port: 18778\nlocal_worker_capabilities: [docker]\n")
    proc = subprocess.run([sys.executable, "-m", "pipeline", "--matrix",
                           str(project / "matrix.yml"), "master", "start"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "no worker can run vm-test/5.10, vm-test/6.1" in proc.stderr
    assert "need a worker with `qemu` in its capabilities" in proc.stderr
    assert "Traceback" not in proc.stderr and "workername is required" not in proc.stderr
    assert not (project / ".buildbot" / "twistd.pid").exists()
