"""`pipeline run --job vm-bench/6.12` end to end: the module and vexctl built in Docker,
kernel/tests/run-bench.sh and `vexctl bench` run in a real QEMU boot of Debian's 6.12, the
metrics in bench.json, junit.xml and index.html; a second run compares with the first.

Runs in a scratch copy of the project (`project_copy`) with this session's result cache,
so the second run restores the first run's results (CACHED) and compares them with it.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from junitparser import JUnitXml

from tests.conftest import docker_available, run_cli
from tests.unit.test_bench_report import bench_rows

pytestmark = [
    pytest.mark.docker,
    pytest.mark.qemu,
    pytest.mark.skipif(not docker_available(), reason="Docker Engine not reachable"),
]

JOB = "vm-bench/6.12"
NINE = {"insert_us", "search_p50_us", "search_p99_us", "hybrid_p50_us", "hybrid_p99_us",
        "ioctl_rtt_p50_us", "user_search_p50_us", "user_search_p99_us",
        "search_kernel_user_ratio"}


def _latest(project: Path) -> tuple[Path, dict, str]:
    """The newest run's job directory, its bench.json and the run's index.html."""
    run = project / "reports" / "latest"
    job = run / JOB
    return job, json.loads((job / "bench.json").read_text()), (run / "index.html").read_text()


def test_vm_bench_measures_nine_metrics_and_the_report_shows_them(project_copy: Path) -> None:
    proc = run_cli("run", "--job", JOB, cwd=project_copy, timeout=1500)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    first = (project_copy / "reports" / "latest").resolve().name
    job, data, html = _latest(project_copy)
    assert data["problems"] == [], data["problems"]
    metrics = {m["name"]: m for m in data["metrics"]}
    assert set(metrics) == NINE
    for m in metrics.values():
        assert m["value"] > 0 and m["reps"] == 5 and m["spread"] >= 0, m
        assert m["unit"] == ("x" if m["name"] == "search_kernel_user_ratio" else "us"), m
    assert data["comparison"]["baseline_run"] is None  # the copy's first run
    # the KTAP of the script and of vexctl (nested) are test cases too, all passing
    (suite,) = list(JUnitXml.fromfile(str(job / "junit.xml")))
    props = {p.name: p.value for p in suite.properties()}
    assert {n for n in props if n.count(".") == 1} == {f"bench.{n}" for n in NINE}
    cases = {c.name: c for c in suite}
    assert {f"bench.{n}" for n in NINE} <= set(cases) and "vm" in cases
    assert not [n for n, c in cases.items() if c.result], "failing or skipped cases"
    rows = bench_rows(html)
    assert set(rows) == NINE
    for name, cells in rows.items():
        assert float(cells[1]) == pytest.approx(metrics[name]["value"], rel=1e-5)
        assert cells[4:] == ["-", "-", "no baseline"]

    proc = run_cli("run", "--job", JOB, cwd=project_copy, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    job, again, html = _latest(project_copy)
    summary = json.loads((job.parent.parent / "summary.json").read_text())
    assert {r["id"]: r["status"] for r in summary["results"]}[JOB] == "cached"
    assert again["comparison"]["baseline_run"] == first
    assert {v["verdict"] for v in again["comparison"]["metrics"].values()} == {"ok"}
    assert {cells[5] for cells in bench_rows(html).values()} == {"1.000"}
