"""`pipeline run` end to end with the real Docker Engine, real headers and real cargo."""

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


def _cases(junit: Path) -> dict[str, object]:
    xml = JUnitXml.fromfile(str(junit))
    return {f"{c.classname}::{c.name}": c for suite in xml for c in suite}


def test_module_build_passes_and_keeps_ko_and_modinfo(tmp_path: Path) -> None:
    proc = run_cli("run", "--kernel", "6.1", "--job", "kmod-build/6.1", "--reports", str(tmp_path))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    latest = tmp_path / "latest"
    job = latest / "kmod-build" / "6.1"
    assert (job / "artifacts" / "vexfs.ko").stat().st_size > 10_000
    modinfo = (job / "artifacts" / "modinfo.txt").read_text()
    assert "vermagic:       6.1.0-" in modinfo and "name:           vexfs" in modinfo
    cases = _cases(latest / "junit.xml")
    assert list(cases) == ["kmod-build/6.1::build"]
    meta = json.loads((job / "metadata.json").read_text())
    assert meta["status"] == "passed"
    assert meta["kernel"]["abi"].startswith("6.1.0-")
    assert meta["image"]["tag"].startswith("kmatrix/kbuild-6.1:")
    assert "docker run" in (job / "reproduce.sh").read_text()
    summary = json.loads((latest / "summary.json").read_text())
    assert summary["status"] == "passed" and summary["tests"]["total"] == 1


def test_broken_module_fails_with_compiler_error_in_junit(project_copy: Path) -> None:
    source = project_copy / "kernel" / "vexfs_main.c"
    source.write_text(source.read_text() + "\nstatic int broken(void) { return undeclared_x; }\n")
    proc = run_cli("run", "--kernel", "6.1", "--job", "kmod-build/6.1", cwd=project_copy)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    case = _cases(project_copy / "reports" / "latest" / "junit.xml")["kmod-build/6.1::build"]
    failure = case.result[0]
    assert type(failure).__name__ == "Failure"
    assert "undeclared_x" in failure.message and "error:" in failure.message
    assert "vexfs_main.c" in failure.text
    assert "FAIL" in proc.stdout and "undeclared_x" in proc.stdout


def test_crate_test_runs_offline_and_reports_each_test(tmp_path: Path) -> None:
    proc = run_cli("run", "--job", "crate-test/pairs.userspace", "--reports", str(tmp_path))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    cases = _cases(tmp_path / "latest" / "junit.xml")
    steps = {k for k in cases if k.endswith(("::fetch", "::build"))}
    assert steps == {"crate-test/pairs.userspace::fetch", "crate-test/pairs.userspace::build"}
    libtest = [c for k, c in cases.items() if "crate-test/pairs.userspace.test" in k]
    assert len(libtest) >= 10, sorted(cases)
    assert all(c.time is not None for c in libtest)
    assert all(not c.result for c in libtest)
    log = (tmp_path / "latest" / "crate-test" / "pairs.userspace" / "log.txt").read_text()
    assert "== step test (no network" in log and "== step fetch (network" in log


def test_failing_rust_test_is_a_failing_case(project_copy: Path) -> None:
    tests_dir = project_copy / "userspace" / "tests"
    tests_dir.mkdir(exist_ok=True)
    (tests_dir / "deliberately_broken.rs").write_text(
        "#[test]\nfn fails_on_purpose() { assert_eq!(1 + 1, 3, \"maths is broken\"); }\n")
    proc = run_cli("run", "--job", "crate-test/default", cwd=project_copy)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    cases = _cases(project_copy / "reports" / "latest" / "junit.xml")
    failing = [c for k, c in cases.items() if "fails_on_purpose" in k]
    assert len(failing) == 1
    assert "maths is broken" in (failing[0].result[0].text or "") + failing[0].result[0].message


def test_docker_unreachable_is_exit_2_with_one_line(tmp_path: Path) -> None:
    proc = run_cli("run", "--kernel", "6.1", "--reports", str(tmp_path),
                   env={"DOCKER_HOST": f"unix://{tmp_path}/no-such.sock"})
    assert proc.returncode == 2
    assert "Docker is not reachable" in proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout


def test_compiler_warning_fails_the_module_build(project_copy: Path) -> None:
    source = project_copy / "kernel" / "vexfs_main.c"
    source.write_text(source.read_text()
                      + "\nint vexfs_unused_warning(void);\n"
                        "int vexfs_unused_warning(void) { int x; return 0; }\n")
    proc = run_cli("run", "--kernel", "6.1", "--job", "kmod-build/6.1", cwd=project_copy)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    case = _cases(project_copy / "reports" / "latest" / "junit.xml")["kmod-build/6.1::build"]
    assert "unused variable" in case.result[0].message
