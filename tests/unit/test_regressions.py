"""Tests for pipeline/regressions.py: compare(), loading JUnit statuses, find_baseline()."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pipeline.report.regressions import (
    Change,
    TestStatus,
    compare,
    compare_runs,
    find_baseline,
    load_junit,
    load_run,
    regressions_for,
)
from tests.unit.test_html_report import MATRIX, Case, FakeJob, make_run

JOB = "crate-test/default"
NAME = f"{JOB}.test.tests::t"
BUCKETS = ("newly_failing", "fixed", "still_failing", "new_tests", "removed_tests")


def _st(status: str, message: str = "", job: str = JOB, name: str = NAME) -> TestStatus:
    return TestStatus(job, name, status, message)


@pytest.mark.parametrize(("before", "now", "buckets"), [
    ("passed", "failed", {"newly_failing"}),
    ("passed", "error", {"newly_failing"}),
    ("skipped", "failed", {"newly_failing"}),
    (None, "failed", {"newly_failing", "new_tests"}),
    (None, "error", {"newly_failing", "new_tests"}),
    ("failed", "failed", {"still_failing"}),
    ("error", "failed", {"still_failing"}),
    ("failed", "error", {"still_failing"}),
    ("failed", "passed", {"fixed"}),
    ("error", "passed", {"fixed"}),
    ("failed", "skipped", {"fixed"}),
    ("passed", "passed", set()),
    ("skipped", "passed", set()),
    ("passed", "skipped", set()),
    (None, "passed", {"new_tests"}),
    (None, "skipped", {"new_tests"}),
    ("passed", None, {"removed_tests"}),
    ("failed", None, {"removed_tests"}),
])
def test_compare_classifies_one_test(before: str | None, now: str | None,
                                     buckets: set[str]) -> None:
    other = _st("passed", name=f"{JOB}.other")  # keeps the job "run" in both runs
    current = [other] + ([_st(now, "now")] if now else [])
    baseline = [other] + ([_st(before, "before")] if before else [])
    result = compare(current, baseline, baseline_run="base")
    found = {b for b in BUCKETS if getattr(result, b)}
    assert found == buckets
    for bucket in found:
        (change,) = getattr(result, bucket)
        assert change == Change(JOB, NAME, now, "now" if now else "", before,
                                "before" if before else "")
    assert result.baseline_run == "base"
    assert result.has_regressions == ("newly_failing" in buckets)


def test_tests_of_jobs_not_run_now_are_ignored() -> None:
    baseline = [_st("failed", job="kmod-build/6.12", name="kmod-build/6.12.build"),
                _st("passed")]
    result = compare([_st("passed")], baseline)
    assert result.counts() == dict.fromkeys(BUCKETS, 0)


def test_same_test_name_in_two_jobs_is_two_tests() -> None:
    now = [_st("failed", job="a/1", name="t"), _st("passed", job="a/2", name="t")]
    before = [_st("passed", job="a/1", name="t"), _st("failed", job="a/2", name="t")]
    result = compare(now, before)
    assert [c.job for c in result.newly_failing] == ["a/1"]
    assert [c.job for c in result.fixed] == ["a/2"]


def test_compare_accepts_mappings_and_sorts() -> None:
    now = {(j, n): _st("failed", job=j, name=n) for j, n in [("b", "b.z"), ("a", "a.y"),
                                                              ("a", "a.x")]}
    result = compare(now, {})
    assert [(c.job, c.name) for c in result.newly_failing] == [("a", "a.x"), ("a", "a.y"),
                                                               ("b", "b.z")]
    assert result.newly_failing[0].short_name == "x"


def test_to_json_round_trips_through_json() -> None:
    result = compare([_st("failed", "boom")], [_st("passed")], "base")
    data = json.loads(json.dumps(result.to_json()))
    assert data["baseline"] == "base"
    assert data["newly_failing"][0]["message"] == "boom"


# --- loading from run directories --------------------------------------------------------

def _jobs(math: str = "failed", adds: str = "passed") -> list[FakeJob]:
    return [
        FakeJob("kmod-build/6.1", "passed", {"kernel": "6.1"}, [Case("build")]),
        FakeJob(JOB, "failed" if "failed" in (math, adds) else "passed",
                {"features": "default"},
                [Case("build"),
                 Case("tests::math", math, "math is broken" if math == "failed" else "",
                      suffix=".test"),
                 Case("tests::adds", adds, "overflow" if adds == "failed" else "",
                      suffix=".test"),
                 Case("tests::slow", "skipped", "ignored", suffix=".test")]),
    ]


def test_load_run_reads_the_merged_junit(tmp_path: Path) -> None:
    statuses = load_run(make_run(tmp_path, "r", _jobs()))
    assert statuses[(JOB, f"{JOB}.test.tests::math")] == TestStatus(
        JOB, f"{JOB}.test.tests::math", "failed", "math is broken")
    assert statuses[(JOB, f"{JOB}.test.tests::slow")].status == "skipped"
    assert statuses[("kmod-build/6.1", "kmod-build/6.1.build")].status == "passed"
    assert len(statuses) == 5


def test_load_run_falls_back_to_job_junit_files(tmp_path: Path) -> None:
    run = make_run(tmp_path, "r", _jobs())
    merged = load_run(run)
    (run / "junit.xml").unlink()
    assert load_run(run) == merged


def test_load_junit_of_missing_or_broken_file_is_empty(tmp_path: Path) -> None:
    assert load_junit(tmp_path / "nope.xml") == {}
    (tmp_path / "bad.xml").write_text("<testsuites><testsuite")
    assert load_junit(tmp_path / "bad.xml") == {}


def test_compare_runs(tmp_path: Path) -> None:
    base = make_run(tmp_path, "20261126-100000-aaaa", _jobs(math="passed", adds="failed"))
    run = make_run(tmp_path, "20261127-100000-bbbb", _jobs(math="failed", adds="passed"))
    result = compare_runs(run, base)
    assert result.baseline_run == "20261126-100000-aaaa"
    assert [c.short_name for c in result.newly_failing] == ["test.tests::math"]
    assert [c.short_name for c in result.fixed] == ["test.tests::adds"]
    assert result.fixed[0].baseline_message == "overflow"
    assert result.still_failing == [] and result.new_tests == [] and result.removed_tests == []


# --- find_baseline ------------------------------------------------------------------------

def _run(reports: Path, run_id: str, started: str, matrix: str = MATRIX) -> Path:
    return make_run(reports, run_id, _jobs(), matrix=matrix, started=started)


def test_find_baseline_picks_the_newest_earlier_run_of_the_same_matrix(tmp_path: Path) -> None:
    reports = tmp_path / "reports"
    _run(reports, "20261125-090000-0001", "2026-11-25T09:00:00+00:00")
    wanted = _run(reports, "20261126-090000-0002", "2026-11-26T09:00:00+00:00")
    _run(reports, "20261126-120000-0003", "2026-11-26T12:00:00+00:00", matrix="/other/m.yml")
    (reports / "20261126-130000-0004").mkdir()  # crashed/running: no summary.json
    current = _run(reports, "20261127-090000-0005", "2026-11-27T09:00:00+00:00")
    _run(reports, "20261128-090000-0006", "2026-11-28T09:00:00+00:00")  # later
    (reports / "latest").symlink_to("20261128-090000-0006")
    (reports / ".latest-123").symlink_to("20261128-090000-0006")
    assert find_baseline(reports, current, Path(MATRIX)) == wanted
    assert find_baseline(reports, current, MATRIX) == wanted


def test_the_baseline_is_found_without_reading_every_earlier_run(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """reports/ keeps every run: finding the previous one reads its summary, not all 40."""
    from pipeline.report import regressions

    reports = tmp_path / "reports"
    for day in range(1, 41):
        last = _run(reports, f"202611{day // 24 + 1:02d}-{day % 24:02d}0000-{day:04d}",
                    f"2026-11-{day // 24 + 1:02d}T{day % 24:02d}:00:00+00:00")
    current = _run(reports, "20261203-090000-9999", "2026-12-03T09:00:00+00:00")
    read: list[str] = []
    real = regressions._read_summary
    monkeypatch.setattr(regressions, "_read_summary",
                        lambda run: read.append(run.name) or real(run))
    assert find_baseline(reports, current, MATRIX) == last
    result = regressions_for(reports, current, MATRIX)
    assert result is not None and result.baseline_run == last.name
    assert set(read) == {last.name}


def test_find_baseline_none_without_earlier_runs(tmp_path: Path) -> None:
    reports = tmp_path / "reports"
    current = _run(reports, "20261127-090000-0005", "2026-11-27T09:00:00+00:00")
    assert find_baseline(reports, current, MATRIX) is None
    assert find_baseline(tmp_path / "missing", current, MATRIX) is None
    assert regressions_for(reports, current, MATRIX) is None


def test_find_baseline_for_a_run_without_summary_yet_uses_run_ids(tmp_path: Path) -> None:
    reports = tmp_path / "reports"
    wanted = _run(reports, "20261126-090000-0002", "2026-11-26T09:00:00+00:00")
    _run(reports, "20261128-090000-0006", "2026-11-28T09:00:00+00:00")
    current = reports / "20261127-090000-0005"
    current.mkdir()
    assert find_baseline(reports, current, MATRIX) == wanted


def test_find_baseline_matches_matrix_paths_after_resolving(tmp_path: Path) -> None:
    reports = tmp_path / "reports"
    matrix = tmp_path / "proj" / "matrix.yml"
    matrix.parent.mkdir()
    matrix.write_text("version: 1\n")
    (tmp_path / "link").symlink_to(tmp_path / "proj")
    wanted = _run(reports, "20261126-090000-0002", "2026-11-26T09:00:00+00:00",
                  matrix=str(tmp_path / "link" / "matrix.yml"))
    current = _run(reports, "20261127-090000-0005", "2026-11-27T09:00:00+00:00",
                   matrix=str(matrix))
    assert find_baseline(reports, current, matrix) == wanted
    result = regressions_for(reports, current, matrix)
    assert result is not None and result.baseline_run == wanted.name


def test_a_filtered_run_is_not_the_baseline_of_the_jobs_it_left_out(tmp_path: Path) -> None:
    """`pipeline run --kernel 6.1` ran only kmod-build; the next full run compares the crate
    job with the full run before, so its tests are not "new"."""
    reports = tmp_path / "reports"
    full = _run(reports, "20261125-090000-0001", "2026-11-25T09:00:00+00:00")
    filtered = make_run(reports, "20261126-090000-0002", _jobs()[:1],
                        started="2026-11-26T09:00:00+00:00")
    current = make_run(reports, "20261127-090000-0003", _jobs(math="passed"),
                       started="2026-11-27T09:00:00+00:00")
    result = regressions_for(reports, current, MATRIX)
    assert result is not None and result.new_tests == []
    assert [c.short_name for c in result.fixed] == ["test.tests::math"]
    assert result.baseline_run == f"{filtered.name} (+1 earlier for other jobs)"
    assert full.name != filtered.name
