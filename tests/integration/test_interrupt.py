"""Ctrl-C / SIGTERM in the middle of a run: containers of that run stopped by id, a
report still written with unfinished jobs marked INTERRUPTED (real Docker)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import docker_available

pytestmark = [
    pytest.mark.docker,
    pytest.mark.skipif(not docker_available(), reason="Docker Engine not reachable"),
]

MATRIX = """\
kernels: {"6.1": {suite: bookworm}}
jobs:
  slow:
    over: [kernel]
    image: kbuild
    run: echo started-slow; sleep 300
  after:
    over: [kernel]
    image: kbuild
    needs: [slow]
    run: echo never
"""


def _containers(label: str) -> list[str]:
    out = subprocess.run(["docker", "ps", "-aq", "--filter", f"label={label}"],
                         capture_output=True, text=True, check=True).stdout
    return out.split()


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_signal_stops_the_runs_containers_and_keeps_a_report(project_copy: Path,
                                                             signum: int) -> None:
    (project_copy / "matrix.yml").write_text(MATRIX)
    proc = subprocess.Popen(
        [sys.executable, "-m", "pipeline", "run", "-v"], cwd=project_copy,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"})
    seen = []
    try:
        deadline = time.monotonic() + 300
        assert proc.stdout is not None
        for line in proc.stdout:
            seen.append(line)
            if "started-slow" in line:
                break
            assert time.monotonic() < deadline, "".join(seen)
        run_id = next(line.split()[1].rstrip(":") for line in seen if line.startswith("run "))
        assert _containers(f"org.kmatrix.run={run_id}"), "the job's container should exist"
        stopped_at = time.monotonic()
        proc.send_signal(signum)
        rest, _ = proc.communicate(timeout=60)
        took = time.monotonic() - stopped_at
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, "".join(seen) + rest
    assert took < 30
    assert "Traceback" not in rest
    assert _containers(f"org.kmatrix.run={run_id}") == []
    summary = json.loads((project_copy / "reports" / run_id / "summary.json").read_text())
    statuses = {r["id"]: r["status"] for r in summary["results"]}
    assert statuses == {"slow/6.1": "interrupted", "after/6.1": "interrupted"}
    assert (project_copy / "reports" / run_id / "junit.xml").is_file()
    log = (project_copy / "reports" / run_id / "slow" / "6.1" / "log.txt").read_text()
    assert "started-slow" in log
