"""The merged junit.xml lists every selected job: a job that left no JUnit of its own
(skipped for a failed need, cancelled by --fail-fast, interrupted, or failed before any
step) is one case carrying the reason, so Jenkins or GitLab know it never ran."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace

from junitparser import Error, JUnitXml, Skipped

from pipeline.report.summary import write_summary
from pipeline.results.merge import NOT_RUN
from pipeline.results.status import JobResult


def _job(job_id: str) -> SimpleNamespace:
    return SimpleNamespace(id=job_id, name=job_id.split("/")[0], axes=dict)


def test_jobs_without_junit_are_cases_with_their_reason(tmp_path: Path) -> None:
    built = tmp_path / "kmod-build-6.1"
    built.mkdir()
    (built / "junit.xml").write_text(
        '<testsuite name="kmod-build/6.1"><testcase classname="kmod-build/6.1" name="build">'
        '<failure message="error: x"/></testcase></testsuite>')
    results = {
        "kmod-build/6.1": JobResult("kmod-build/6.1", "failed", directory="kmod-build-6.1"),
        "vm-test/6.1": JobResult("vm-test/6.1", "skipped",
                                 message="needs failed: kmod-build/6.1"),
        "crate-test/a": JobResult("crate-test/a", "cancelled", message="--fail-fast"),
        "crate-test/b": JobResult("crate-test/b", "interrupted", message="SIGINT"),
        "docs": JobResult("docs", "error", message="image build failed: apt"),
        "lint": JobResult("lint", "passed"),  # passed without a file: nothing to add
    }
    summary = write_summary(tmp_path, "r1", Path("matrix.yml"),
                            [_job(j) for j in results], results, datetime.now(UTC))
    xml = JUnitXml.fromfile(str(tmp_path / "junit.xml"))
    cases = {suite.name: list(suite) for suite in xml}
    assert set(cases) == {"kmod-build/6.1", "vm-test/6.1", "crate-test/a", "crate-test/b",
                          "docs"}
    skipped = cases["vm-test/6.1"][0]
    assert skipped.name == NOT_RUN and isinstance(skipped.result[0], Skipped)
    assert skipped.result[0].message == "skipped: needs failed: kmod-build/6.1"
    assert cases["crate-test/a"][0].result[0].message == "cancelled: --fail-fast"
    assert isinstance(cases["docs"][0].result[0], Error)
    assert summary["tests"] == {"total": 5, "failures": 1, "errors": 1, "skipped": 3}
    assert 'skipped="3"' in (tmp_path / "junit.xml").read_text()
