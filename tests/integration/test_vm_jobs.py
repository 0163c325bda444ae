"""`pipeline run --job vm-test/6.1` end to end: real Docker builds, real QEMU boots.

Each test runs in a scratch copy of the project (`project_copy`): the module and the in-VM
script can be broken there at will. The result cache is disabled so every run really
builds and boots. 15-35 s per test under TCG on a 2-core machine.
"""

from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path

import pytest
from junitparser import Error, Failure, JUnitXml

from tests.conftest import docker_available, run_cli

pytestmark = [
    pytest.mark.docker,
    pytest.mark.qemu,
    pytest.mark.skipif(not docker_available(), reason="Docker Engine not reachable"),
]

JOB = "vm-test/6.1"
NO_CACHE = {"KMATRIX_RESULT_CACHE_MB": "0"}  # no stored results: every job runs


def _run(project: Path, timeout: float = 600) -> tuple[object, float]:
    t0 = time.monotonic()
    proc = run_cli("run", "--job", JOB, cwd=project, env=NO_CACHE, timeout=timeout)
    return proc, time.monotonic() - t0


def _cases(junit: Path) -> dict[str, object]:
    xml = JUnitXml.fromfile(str(junit))
    return {f"{c.classname}::{c.name}": c for suite in xml for c in suite}


def _problems(case: object) -> list[Failure | Error]:
    return [r for r in case.result if isinstance(r, Failure | Error)]


def _job_dir(project: Path) -> Path:
    return project / "reports" / "latest" / "vm-test" / "6.1"


def _qemu_processes_under(path: Path) -> list[str]:
    """QEMU processes whose command line or cwd mention `path` (never matched by name)."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            argv = (proc / "cmdline").read_bytes().split(b"\0")
            cwd = os.readlink(proc / "cwd")
        except OSError:  # gone meanwhile, or not ours to read
            continue
        cmdline = b" ".join(argv).decode(errors="replace")
        if "qemu" in os.path.basename(argv[0].decode(errors="replace")) and (
            str(path) in cmdline or cwd.startswith(str(path))
        ):
            found.append(f"{proc.name}: {cmdline}")
    return found


def test_vm_test_passes_with_ktap_cases_and_vm_case(project_copy: Path) -> None:
    proc, _ = _run(project_copy)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    cases = _cases(_job_dir(project_copy) / "junit.xml")
    assert f"{JOB}::vm" in cases
    ktap = {k.split("::", 1)[1] for k in cases if k.startswith(f"{JOB}.ktap")}
    # top level, nested groups (suite.case) and ioctl_smoke's own KTAP
    for name in ("insmod", "rmmod", "umount", "dmesg_clean", "stats", "mount.dim4",
                 "vectors.get_vector_roundtrip", "search.l2_tie_by_ino",
                 "hybrid_search.tag_eq_l2", "index.search_after_rebuild",
                 "errors.search_k257_e2big", "ioctl_smoke.search_scan_matches_model"):
        assert name in ktap, sorted(ktap)
    assert len(ktap) >= 100
    failing = [k for k, c in cases.items() if _problems(c) or any(
        type(r).__name__ == "Skipped" for r in c.result)]
    assert not failing
    assert not [k for k in cases if "::dmesg." in k]
    meta = json.loads((_job_dir(project_copy) / "metadata.json").read_text())
    assert meta["vm"]["status"] == "ok" and meta["vm"]["exit_code"] == 0
    ktap_text = (_job_dir(project_copy) / "artifacts" / "ktap.txt").read_text()
    assert "  # Subtest: index" in ktap_text and ktap_text.startswith("KTAP version 1\n1..")


def test_module_that_oopses_on_load_fails_with_the_oops(project_copy: Path) -> None:
    source = project_copy / "kernel" / "vexfs_main.c"
    text = source.read_text()
    init = "static int __init vexfs_init(void)\n{\n"
    assert init in text
    # a NULL store the compiler cannot see through (volatile pointer): oops in insmod
    source.write_text(text.replace(
        init, init + "\t{\n\t\tint *volatile kmatrix_null = NULL;\n\n"
                     "\t\t*kmatrix_null = 1;\n\t}\n", 1))
    proc, seconds = _run(project_copy)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    cases = _cases(project_copy / "reports" / "latest" / "junit.xml")
    assert not _problems(cases["kmod-build/6.1::build"])  # it compiled
    # the splat is a failing case of its own: the message is the BUG/Oops line, the text
    # the console excerpt (register dump, call trace)
    splats = [r for k, c in cases.items() if k.startswith(f"{JOB}::dmesg.")
              for r in _problems(c)]
    assert splats, sorted(k for k, c in cases.items() if _problems(c))
    assert re.search(r"BUG: kernel NULL pointer dereference|\bOops\b", splats[0].message)
    assert "vexfs_init" in splats[0].text and "Oops" in splats[0].text
    assert _problems(cases[f"{JOB}.ktap::insmod"])
    assert "FAIL" in proc.stdout
    assert seconds < 300  # nothing waited for the stuck module until a timeout


def test_hanging_test_is_cut_off_at_its_timeout(project_copy: Path) -> None:
    script = project_copy / "kernel" / "tests" / "run-ktap.sh"
    text = script.read_text()
    assert "ok $st insmod\n" in text
    script.write_text(text.replace("ok $st insmod\n", "ok $st insmod\nsleep 1000\n", 1))
    matrix = project_copy / "matrix.yml"
    spec = matrix.read_text()
    # only the vm-test job's own limits (vm-test-rust has the same values)
    head, sep, tail = spec.partition("\n  vm-test:")
    body, sep2, rest = tail.partition("\n  vm-test-rust:")
    assert sep and body.count("test-timeout: 60") == 1 and body.count("timeout: 300") == 1
    body = body.replace("test-timeout: 60", "test-timeout: 8").replace("timeout: 300",
                                                                      "timeout: 240")
    matrix.write_text(head + sep + body + sep2 + rest)
    proc, seconds = _run(project_copy)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    vm_case = _cases(_job_dir(project_copy) / "junit.xml")[f"{JOB}::vm"]
    (problem,) = _problems(vm_case)
    assert "timeout" in problem.message and "no KTAP result for 8 s" in problem.message
    assert "ok 1 insmod" in problem.text  # the last console lines come along
    meta = json.loads((_job_dir(project_copy) / "metadata.json").read_text())
    assert meta["status"] == "failed" and meta["vm"]["status"] == "timeout"
    assert meta["seconds"] < 120 and seconds < 400  # far from the 1000 s sleep
    assert "timeout" in proc.stdout
    assert not _qemu_processes_under(project_copy)
