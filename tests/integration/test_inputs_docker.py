"""Hermetic inputs with real Docker: a job sees only its inputs at /src, an undeclared read
fails with the `inputs:` line to add, and a header edit reruns every job that reads it."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from junitparser import JUnitXml

from tests.conftest import docker_available, run_cli

pytestmark = [
    pytest.mark.docker,
    pytest.mark.skipif(not docker_available(), reason="Docker Engine not reachable"),
]
GIT = ["git", "-c", "user.name=t", "-c", "user.email=t@example.invalid",
       "-c", "init.defaultBranch=main"]
READER = """\
version: 1
defaults: {{timeout: 300, image-base: mmdebstrap}}
kernels: {{"6.1": {{suite: bookworm}}}}
jobs:
  reader:
    over: [kernel]
    image: kbuild
    inputs: [{inputs}]
    steps:
      - name: read
        run: |
          (cd "$SRC" && find . -type f | sort)
          cat "$SRC/kernel/Makefile" > /dev/null
          wc -c "$SRC/kernel/vexfs_main.c"
"""


def _summary(project: Path) -> dict:
    return json.loads((project / "reports" / "latest" / "summary.json").read_text())


def test_undeclared_input_fails_job(project_copy: Path, tmp_path: Path) -> None:
    env = {"KMATRIX_RESULT_CACHE_DIR": str(tmp_path / "results"), "COLUMNS": "400"}
    (project_copy / "matrix.yml").write_text(READER.format(
        inputs='"kernel/Makefile", "kernel/include/**"'))
    proc = run_cli("run", cwd=project_copy, env=env)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    (row,) = _summary(project_copy)["results"]
    fix = 'add "kernel/vexfs_main.c" to inputs: of job reader (matrix.yml:5)'
    assert row["status"] == "failed" and fix in row["message"], row
    assert "it read kernel/vexfs_main.c, not in its inputs" in row["message"]
    assert fix in proc.stdout + proc.stderr  # the terminal says it too
    job = project_copy / "reports" / "latest" / "reader" / "6.1"
    log = (job / "log.txt").read_text()
    # it saw exactly its inputs: not the rest of kernel/, not matrix.yml, not userspace/
    listed = [line for line in log.splitlines() if line.startswith("./")]
    assert listed == ["./kernel/Makefile", "./kernel/include/uapi/vexfs.h"], log
    assert "/src/kernel/vexfs_main.c: No such file or directory" in log
    meta = json.loads((job / "metadata.json").read_text())
    assert meta["undeclared_inputs"] == ["kernel/vexfs_main.c"]
    assert meta["inputs"]["files"] == 2
    # reproduce.sh makes the same /src (its inputs only) and fails the same way
    repro = subprocess.run(["bash", str(job / "reproduce.sh")], capture_output=True, text=True,
                           timeout=300)
    assert repro.returncode != 0
    assert "/src/kernel/vexfs_main.c: No such file or directory" in repro.stdout + repro.stderr

    (project_copy / "matrix.yml").write_text(READER.format(
        inputs='"kernel/Makefile", "kernel/include/**", "kernel/vexfs_main.c"'))
    proc = run_cli("run", cwd=project_copy, env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert _summary(project_copy)["results"][0]["status"] == "passed"


def _git_snapshot(project: Path) -> None:
    subprocess.run([*GIT, "init", "-q"], cwd=project, check=True)
    (project / ".gitignore").write_text("/reports/\ntarget/\n")
    subprocess.run([*GIT, "add", "-A"], cwd=project, check=True)
    subprocess.run([*GIT, "commit", "-qm", "snapshot"], cwd=project, check=True)


def _run_crate_test(project: Path, env: dict[str, str]) -> dict:
    proc = run_cli("run", "--job", "crate-test/default", cwd=project, env=env)
    assert proc.returncode in (0, 1), proc.stdout + proc.stderr
    (row,) = _summary(project)["results"]
    return row


def test_header_change_reruns_crate_tests(project_copy: Path, tmp_path: Path) -> None:
    """The issue's case: crate-test/default compiles kernel/tests/abi_dump.c against the
    header (tests/abi_c.rs); a header edit must rerun it, and every other job reading it."""
    env = {"KMATRIX_RESULT_CACHE_DIR": str(tmp_path / "results"), "COLUMNS": "400"}
    _git_snapshot(project_copy)
    first = _run_crate_test(project_copy, env)
    assert first["status"] == "passed", first
    junit = JUnitXml.fromfile(str(project_copy / "reports" / "latest" / "junit.xml"))
    names = {c.name for suite in junit for c in suite}
    assert any("c_dump_compiled_here" in n for n in names), sorted(names)
    assert _run_crate_test(project_copy, env)["status"] == "cached"

    header = project_copy / "kernel" / "include" / "uapi" / "vexfs.h"
    text = header.read_text()
    assert "#define VEXFS_FILTER_MAX\t4" in text
    header.write_text(text.replace("#define VEXFS_FILTER_MAX\t4", "#define VEXFS_FILTER_MAX\t5"))

    # selection: every job whose inputs hold the header, and their dependents
    proc = run_cli("list", "--changed-since", "HEAD", "--json", cwd=project_copy, env=env)
    assert proc.returncode == 0, proc.stderr
    rows = json.loads(proc.stdout)
    chosen = {r["id"] for r in rows if r["selected"]}
    proc = run_cli("list", "--json", cwd=project_copy, env=env)
    every = {r["id"] for r in json.loads(proc.stdout)}
    crate_tests = {j for j in every if j.startswith("crate-test/")}
    assert len(crate_tests) >= 10 and crate_tests <= chosen
    readers = {j for j in every if j.startswith(("kmod-build", "vm-test", "vm-bench"))} | {
        "abi-check"}
    assert readers <= chosen
    assert chosen == crate_tests | readers  # the crate builds, vexctl, guards: not affected

    # and the run: not CACHED, and the edit really reaches the test (C and Rust now differ)
    after = _run_crate_test(project_copy, env)
    assert after["status"] == "failed", after
    assert any("c_dump_compiled_here" in f["name"] for f in after["failing"]), after
    assert "Rust ABI mirror differs from C" in json.dumps(after["failing"])
