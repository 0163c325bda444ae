"""The result cache with real Docker: a passed job is reused, --no-cache and edits re-run it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from junitparser import JUnitXml

from tests.conftest import docker_available, run_cli

pytestmark = [
    pytest.mark.docker,
    pytest.mark.skipif(not docker_available(), reason="Docker Engine not reachable"),
]
JOB = "kmod-build/6.1"


def _run(project: Path, env: dict[str, str], *extra: str) -> dict:
    proc = run_cli("run", "--job", JOB, *extra, cwd=project, env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "warning" not in proc.stderr + proc.stdout, proc.stdout + proc.stderr
    latest = project / "reports" / "latest"
    summary = json.loads((latest / "summary.json").read_text())
    (row,) = summary["results"]
    xml = JUnitXml.fromfile(str(latest / "junit.xml"))
    row["cases"] = sorted(f"{c.classname}::{c.name}" for suite in xml for c in suite)
    row["dir"] = latest / JOB
    return row


def test_second_run_is_cached_until_no_cache_or_an_edit(project_copy: Path,
                                                        tmp_path: Path) -> None:
    env = {"KMATRIX_RESULT_CACHE_DIR": str(tmp_path / "results")}
    first = _run(project_copy, env)
    assert first["status"] == "passed" and first["cases"] == [f"{JOB}::build"]
    key = json.loads((first["dir"] / "metadata.json").read_text())["cache"]["key"]

    second = _run(project_copy, env)
    assert second["status"] == "cached" and second["cases"] == first["cases"]
    ko = second["dir"] / "artifacts" / "vexfs.ko"
    assert ko.read_bytes() == (first["dir"] / "artifacts" / "vexfs.ko").read_bytes()
    meta = json.loads((second["dir"] / "metadata.json").read_text())
    assert meta["cache"]["hit"] and meta["cache"]["key"] == key
    log = (second["dir"] / "log.txt").read_text()
    assert log.startswith("== cached:") and "no container or VM was started" in log
    assert second["seconds"] < 2

    forced = _run(project_copy, env, "--no-cache")
    assert forced["status"] == "passed"

    source = project_copy / "kernel" / "vexfs_main.c"
    source.write_text(source.read_text() + "\n/* a comment changes the key */\n")
    edited = _run(project_copy, env)
    assert edited["status"] == "passed"
    assert json.loads((edited["dir"] / "metadata.json").read_text())["cache"]["key"] != key
    assert _run(project_copy, env)["status"] == "cached"

    # `pipeline job` (what a Buildbot worker runs) shares the same cache
    proc = run_cli("job", JOB, "--dir", str(tmp_path / "bb"), cwd=project_copy, env=env)
    assert proc.returncode == 0 and proc.stdout.splitlines()[-1].startswith(f"CACHED {JOB}")
    assert (tmp_path / "bb" / JOB / "artifacts" / "vexfs.ko").is_file()
