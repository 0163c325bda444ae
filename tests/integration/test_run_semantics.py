"""What `pipeline run` promises about a failing job, with real Docker: its dependents are
SKIPPED with the reason, `--fail-fast` cancels what has not started, and on a terminal
the live matrix table is drawn (elsewhere: one line per event)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import ROOT, docker_available, run_cli

MATRIX = """\
version: 1
defaults: {timeout: 300, image-base: mmdebstrap}
kernels:
  "6.1": {suite: bookworm}
features:
  default: {}
jobs:
  broken:
    over: [kernel]
    image: kbuild
    steps: [{name: fails, run: "echo 'this build fails'; exit 3"}]
  after:
    over: [kernel]
    image: kbuild
    needs: [broken]
    steps: [{name: never, run: "true"}]
  slow:
    over: [kernel]
    image: kbuild
    steps: [{name: sleep, run: "sleep 40"}]
"""


@pytest.fixture
def project(tmp_path: Path) -> Path:
    if not docker_available():
        pytest.skip("Docker is not available")
    (tmp_path / "matrix.yml").write_text(MATRIX)
    (tmp_path / "matrix.lock").write_text((ROOT / "matrix.lock").read_text())
    return tmp_path


def _results(proc: subprocess.CompletedProcess[str]) -> dict[str, dict]:
    return {r["id"]: r for r in json.loads(proc.stdout)["results"]}


@pytest.mark.docker
def test_dependents_of_a_failed_job_are_skipped_with_the_reason(project: Path) -> None:
    proc = run_cli("--matrix", str(project / "matrix.yml"), "run", "--json", "--no-cache",
                   "--job", "broken/*", "--job", "after/*", cwd=project)
    assert proc.returncode == 1, proc.stderr
    results = _results(proc)
    assert results["broken/6.1"]["status"] == "failed"
    assert results["after/6.1"]["status"] == "skipped"
    assert results["after/6.1"]["message"] == "needs broken/6.1 which did not pass"
    junit = next((project / "reports").glob("*/junit.xml")).read_text()
    assert 'name="(job not run)"' in junit
    assert "skipped: needs broken/6.1 which did not pass" in junit


@pytest.mark.docker
def test_fail_fast_cancels_what_has_not_started(project: Path) -> None:
    started = time.monotonic()
    proc = run_cli("--matrix", str(project / "matrix.yml"), "run", "--json", "--no-cache",
                   "--fail-fast", "-j", "1", cwd=project)
    assert proc.returncode == 1, proc.stderr
    results = _results(proc)
    assert results["broken/6.1"]["status"] == "failed"
    assert results["slow/6.1"]["status"] == "cancelled"  # its 40 s sleep never ran
    assert results["after/6.1"]["status"] in ("skipped", "cancelled")
    assert time.monotonic() - started < 40


@pytest.mark.docker
def test_the_live_table_draws_on_a_terminal_and_lines_elsewhere(project: Path) -> None:
    command = [sys.executable, "-m", "pipeline", "--matrix", str(project / "matrix.yml"),
               "run", "--no-cache", "--job", "broken/*", "--job", "after/*"]
    env = {**os.environ, "TERM": "xterm-256color", "COLUMNS": "120", "LINES": "40"}
    env.pop("CI", None)
    tty = subprocess.run(["script", "-qec", " ".join(command), "/dev/null"], cwd=project,
                         capture_output=True, text=True, env=env, timeout=600)
    assert tty.returncode == 1, tty.stdout[-2000:]
    screen = tty.stdout
    assert "\x1b[" in screen  # drawn with terminal escapes
    assert "jobs done" in screen and "kernel 6.1" in screen
    assert "\u2502" in screen or "\u2503" in screen  # the table's box lines
    assert "START  broken/6.1" not in screen  # no event lines on a terminal
    plain = run_cli("--matrix", str(project / "matrix.yml"), "run", "--no-cache",
                    "--job", "broken/*", cwd=project)
    assert "START  broken/6.1" in plain.stdout + plain.stderr
    assert "\x1b[" not in plain.stdout
