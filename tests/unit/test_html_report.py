"""Tests for the HTML run report (pipeline/html_report.py), on synthetic run directories."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from junitparser import Error, Failure, Skipped, TestCase, TestSuite

from pipeline.errors import InputError
from pipeline.report.html_report import _version_key, duration, write_html
from pipeline.report.regressions import compare_runs
from pipeline.results.merge import merge_files, write_suite

MATRIX = "/src/project/matrix.yml"
XSS = '<script>alert("pwned")</script>'


# --- a synthetic run directory, as pipeline/runner.py and pipeline/report.py write it -----

@dataclass
class Case:
    """One test case: `suffix` is appended to the job id to form the JUnit classname."""

    name: str
    outcome: str = "passed"  # passed / failed / error / skipped
    message: str = ""
    text: str = ""
    suffix: str = ""


@dataclass
class FakeJob:
    id: str
    status: str
    axes: dict[str, str] = field(default_factory=dict)
    cases: list[Case] = field(default_factory=list)
    seconds: float = 12.5
    message: str = ""
    ran: bool = True  # False: cancelled before it had a directory

    @property
    def name(self) -> str:
        return self.id.split("/")[0]


def _suite(job: FakeJob) -> TestSuite:
    suite = TestSuite(job.id)
    for c in job.cases:
        case = TestCase(c.name, classname=job.id + c.suffix, time=0.5)
        if c.outcome in ("failed", "error"):
            result = (Failure if c.outcome == "failed" else Error)(c.message, "panic")
            result.text = c.text or c.message
            case.result = [result]
        elif c.outcome == "skipped":
            case.result = [Skipped(c.message)]
        suite.add_testcase(case)
    return suite


def make_run(reports: Path, run_id: str, jobs: list[FakeJob], *, matrix: str = MATRIX,
             started: str = "2026-11-27T15:46:01+00:00",
             finished: str = "2026-11-27T15:49:13+00:00") -> Path:
    """reports/<run_id>/ with summary.json, merged junit.xml and per-job directories."""
    run_dir = reports / run_id
    run_dir.mkdir(parents=True)
    rows, junits = [], []
    for job in jobs:
        failing = [{"name": f"{job.id}{c.suffix}.{c.name}", "kind":
                    "failure" if c.outcome == "failed" else "error", "message": c.message}
                   for c in job.cases if c.outcome in ("failed", "error")]
        counts = {k: sum(1 for c in job.cases if c.outcome == k)
                  for k in ("failed", "error", "skipped")}
        directory = None
        if job.ran:
            d = run_dir / job.id
            (d / "artifacts").mkdir(parents=True)
            (d / "log.txt").write_text(f"== step build\n{job.id} log\n")
            (d / "metadata.json").write_text(json.dumps({"job": job.id}))
            (d / "reproduce.sh").write_text("#!/usr/bin/env bash\n")
            write_suite(_suite(job), d / "junit.xml")
            junits.append(d / "junit.xml")
            directory = job.id
        rows.append({
            "id": job.id, "status": job.status, "seconds": job.seconds, "message": job.message,
            "tests": len(job.cases), "failures": counts["failed"], "errors": counts["error"],
            "skipped": counts["skipped"], "failing": failing, "image": "kmatrix/x:1",
            "directory": directory, "name": job.name, "axes": job.axes,
        })
    merged = merge_files(junits, run_dir / "junit.xml", name=run_id)
    statuses = [j.status for j in jobs]
    summary = {
        "run": run_id, "matrix": matrix, "started": started, "finished": finished,
        "status": "passed" if all(s == "passed" for s in statuses) else "failed",
        "jobs": {s: statuses.count(s) for s in dict.fromkeys(statuses)},
        "tests": {"total": merged.tests, "failures": merged.failures, "errors": merged.errors,
                  "skipped": merged.skipped},
        "results": rows,
    }
    (run_dir / "summary.json").write_text(json.dumps(summary, indent=2))
    return run_dir


def sample_jobs() -> list[FakeJob]:
    """Two kernels x two kernel jobs, two feature sets of a crate job, one axis-less job."""
    return [
        FakeJob("kmod-build/6.1", "passed", {"kernel": "6.1"}, [Case("build")], 41.2),
        FakeJob("kmod-build/6.12", "failed", {"kernel": "6.12"}, [Case(
            "build", "failed", "kernel/vexfs.c:3:5: error: implicit declaration of 'foo'",
            "kernel/vexfs.c:3:5: error: implicit declaration of 'foo'\n    3 |   foo();\n")],
            38.0, "step 'build' exited 2"),
        FakeJob("kmod-test/6.1", "passed", {"kernel": "6.1"},
                [Case("vexfs.mount", suffix=".kunit"), Case("vexfs.umount", suffix=".kunit"),
                 Case("vexfs.xattr", "skipped", "no xattr", suffix=".kunit")], 95.0),
        FakeJob("kmod-test/6.12", "cancelled", {"kernel": "6.12"}, [], 0.0,
                "needs kmod-build/6.12 failed", ran=False),
        FakeJob("crate-test/default", "failed", {"features": "default"}, [
            Case("fetch"), Case("build"),
            Case("tests::math_works", "failed",
                 f"assertion `left == right` failed: math is broken {XSS}",
                 f"thread 'tests::math_works' panicked at src/lib.rs:35:9:\n{XSS}\n",
                 suffix=".test"),
            Case("tests::adds", suffix=".test")], 203.4, "1 failing test(s)"),
        FakeJob("crate-test/userspace", "passed", {"features": "userspace"},
                [Case("fetch"), Case("build"), Case("tests::adds", suffix=".test")], 150.0),
        FakeJob("lint", "passed", {}, [Case("clippy")], 7.3),
    ]


# --- a small DOM for assertions ----------------------------------------------------------

class Dom(HTMLParser):
    def __init__(self, html: str) -> None:
        super().__init__(convert_charrefs=True)
        self.elements: list[tuple[str, dict[str, str]]] = []
        self.text: list[str] = []
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.elements.append((tag, {k: v or "" for k, v in attrs}))

    def handle_data(self, data: str) -> None:
        self.text.append(data)

    def cells(self) -> dict[str, str]:
        return {a["data-job"]: a["data-status"] for t, a in self.elements
                if t == "td" and "data-job" in a}

    def hrefs(self) -> list[str]:
        return [a["href"] for t, a in self.elements if t in ("a", "link") and "href" in a]

    def all_text(self) -> str:
        return " ".join(" ".join(self.text).split())


@pytest.fixture
def run(tmp_path: Path) -> Path:
    return make_run(tmp_path / "reports", "20261127-154601-3fa2", sample_jobs())


@pytest.fixture
def html(run: Path) -> str:
    return write_html(run, None).read_text(encoding="utf-8")


def test_writes_index_html_in_the_run_dir(run: Path) -> None:
    path = write_html(run, None)
    assert path == run / "index.html"
    assert path.read_text().startswith("<!doctype html>")
    assert not list(run.glob(".*.tmp"))


def test_every_job_is_a_cell_with_its_status(html: str) -> None:
    assert Dom(html).cells() == {
        "kmod-build/6.1": "passed", "kmod-build/6.12": "failed", "kmod-test/6.1": "passed",
        "kmod-test/6.12": "cancelled", "crate-test/default": "failed",
        "crate-test/userspace": "passed", "lint": "passed",
    }


def _table(html: str, axis: str) -> str:
    match = re.search(rf'<table class="matrix" data-axis="{axis}">(.*?)</table>', html, re.S)
    assert match, f"no {axis} table"
    return match.group(1)


def test_kernel_table_has_kernels_down_and_job_kinds_across(html: str) -> None:
    table = _table(html, "kernel")
    heads = re.findall(r'<th scope="col">(.*?)</th>', table)
    rows = re.findall(r'<th scope="row" class="rowhead">(.*?)</th>', table)
    assert heads == ["kmod-build", "kmod-test"]
    assert rows == ["6.1", "6.12"]
    # row 6.12: the failed build, then the cancelled test, in column order
    row = table.split('class="rowhead">6.12</th>')[1]
    assert row.index('data-job="kmod-build/6.12"') < row.index('data-job="kmod-test/6.12"')
    assert "crate-test" not in table


def test_feature_table_and_axisless_jobs(html: str) -> None:
    table = _table(html, "features")
    assert re.findall(r'<th scope="row" class="rowhead">(.*?)</th>', table) == [
        "default", "userspace"]
    assert re.findall(r'<th scope="col">(.*?)</th>', table) == ["crate-test"]
    other = html.split('id="grid-other"')[1]
    assert 'data-job="lint"' in other


def test_missing_cell_is_marked_not_in_matrix(tmp_path: Path) -> None:
    jobs = [j for j in sample_jobs() if j.id != "kmod-test/6.12"]
    text = write_html(make_run(tmp_path, "r1", jobs), None).read_text()
    assert "not in the matrix" in _table(text, "kernel")


def test_cells_show_duration_counts_and_failing_tests(html: str) -> None:
    text = Dom(html).all_text()
    def cell_text(job: str) -> str:
        return Dom(html.split(f'data-job="{job}"')[1].split("</td>")[0]).all_text()

    assert "2 /3 tests passed · 1 skipped" in cell_text("kmod-test/6.1")
    assert "3 /4 tests passed" in cell_text("crate-test/default")
    assert "not run" in cell_text("kmod-test/6.12")
    assert "0.0 s" not in cell_text("kmod-test/6.12")
    assert "3 m 23 s" in text  # 203.4 s
    assert "41.2 s" in text
    cell = html.split('data-job="crate-test/default"')[1].split("</td>")[0]
    assert "tests::math_works" in cell
    assert "math is broken" in cell


def test_failure_message_is_escaped(html: str) -> None:
    assert "<script" not in html.lower()
    assert "&lt;script&gt;alert(" in html
    assert XSS in Dom(html).all_text()  # the text is still shown, as text


def test_failure_details_come_from_junit(html: str) -> None:
    failures = html.split('id="failures"')[1]
    assert "panicked at src/lib.rs:35:9" in failures
    assert "3 |   foo();" in failures
    assert 'id="x-fail-crate-test-default-test-tests-math_works"' in failures


def test_links_are_relative_and_point_at_the_job_files(run: Path, html: str) -> None:
    hrefs = Dom(html).hrefs()
    files = [h for h in hrefs if not h.startswith(("#", "data:"))]
    for href in files:
        assert "://" not in href and not href.startswith("/"), href
        assert (run / href).exists(), href
    for name in ("log.txt", "junit.xml", "reproduce.sh", "metadata.json", "artifacts/"):
        assert f"kmod-build/6.12/{name}" in files
    assert not any(h.startswith("kmod-test/6.12/") for h in files)  # cancelled: no directory
    anchors = {a["id"] for _, a in Dom(html).elements if "id" in a}
    assert all(h[1:] in anchors for h in hrefs if h.startswith("#"))


def test_missing_job_files_are_not_linked(run: Path) -> None:
    (run / "kmod-build/6.1/reproduce.sh").unlink()
    html = write_html(run, None).read_text()
    assert 'href="kmod-build/6.1/reproduce.sh"' not in html
    assert 'href="kmod-build/6.12/reproduce.sh"' in html


def test_link_paths_are_url_quoted(tmp_path: Path) -> None:
    jobs = [FakeJob("crate test/a+b c", "passed", {"features": "a+b c"}, [Case("x")])]
    html = write_html(make_run(tmp_path, "r", jobs), None).read_text()
    assert 'href="crate%20test/a%2Bb%20c/log.txt"' in html


def test_self_contained_no_external_resources_or_scripts(html: str) -> None:
    assert "<style>" in html
    assert not re.search(r'(src|href)="(https?:)?//', html)
    assert "<script" not in html and "@import" not in html and "url(http" not in html


def test_header_shows_run_status_totals_and_duration(html: str) -> None:
    text = Dom(html).all_text()
    assert "kmatrix run 20261127-154601-3fa2" in text
    assert "FAILED · kmatrix run" in text  # <title>
    assert "7 jobs" in text
    assert "3 m 12 s wall time" in text  # 15:46:01 -> 15:49:13
    assert "2 failed" in text  # tests: the build failure and the panic
    assert "1 cancelled" in text and "4 passed" in text  # job chips
    assert MATRIX in text


def test_no_regressions_section_without_a_baseline(html: str) -> None:
    assert 'id="regressions"' not in html


def test_regressions_section(tmp_path: Path) -> None:
    reports = tmp_path / "reports"
    before = sample_jobs()
    before[1] = FakeJob("kmod-build/6.12", "passed", {"kernel": "6.12"}, [Case("build")])
    before[5].cases[2] = Case("tests::adds", "failed", "was broken", suffix=".test")
    base = make_run(reports, "20261126-100000-aaaa", before, started="2026-11-26T10:00:00+00:00")
    write_html(base, None)
    run = make_run(reports, "20261127-154601-3fa2", sample_jobs())
    html = write_html(run, compare_runs(run, base)).read_text()
    section = html.split('id="regressions"')[1].split("</section>")[0]
    newly = section.split('class="reg newly')[1].split('class="reg fixed')[0]
    fixed = section.split('class="reg fixed')[1].split('class="reg still')[0]
    still = section.split('class="reg still')[1]
    assert "build" in newly and "kmod-build/6.12" in newly and "was passed" in newly
    assert "tests::adds" in fixed and "crate-test/userspace" in fixed and "was broken" in fixed
    assert "tests::math_works" in still
    assert 'href="../20261126-100000-aaaa/index.html"' in section
    assert "&lt;script&gt;" in still and "<script" not in html


def test_all_passed_run(tmp_path: Path) -> None:
    jobs = [j for j in sample_jobs() if j.status == "passed"]
    html = write_html(make_run(tmp_path, "ok", jobs), None).read_text()
    assert 'id="failures"' not in html
    assert "PASSED · kmatrix run ok" in Dom(html).all_text()


def test_empty_run_renders(tmp_path: Path) -> None:
    html = write_html(make_run(tmp_path, "empty", []), None).read_text()
    assert "This run has no jobs." in html


def test_many_failures_are_summarised_in_the_cell(tmp_path: Path) -> None:
    cases = [Case(f"t{i}", "failed", f"boom {i}", suffix=".test") for i in range(9)]
    jobs = [FakeJob("crate-test/default", "failed", {"features": "default"}, cases)]
    html = write_html(make_run(tmp_path, "many", jobs), None).read_text()
    cell = html.split('data-job="crate-test/default"')[1].split("</td>")[0]
    assert "+ 5 more failing" in cell and "boom 3" in cell and "boom 4" not in cell
    assert "boom 8" in html.split('id="failures"')[1]


def test_broken_job_junit_does_not_break_the_report(run: Path) -> None:
    (run / "crate-test/default/junit.xml").write_text("<testsuite><oops")
    html = write_html(run, None).read_text()
    assert "tests::math_works" in html


def test_no_summary_is_an_input_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"no summary\.json"):
        write_html(tmp_path, None)


@pytest.mark.parametrize(("seconds", "text"), [
    (None, "-"), (0, "0.0 s"), (4.24, "4.2 s"), (59.9, "59.9 s"), (60, "1 m 00 s"),
    (185.4, "3 m 05 s"), (3725, "1 h 02 m"),
])
def test_duration(seconds: Any, text: str) -> None:
    assert duration(seconds) == text


def test_kernel_versions_sort_numerically() -> None:
    assert sorted(["6.12", "6.1", "6.9", "5.10.200", "6.6-rt"], key=_version_key) == [
        "5.10.200", "6.1", "6.6-rt", "6.9", "6.12"]
