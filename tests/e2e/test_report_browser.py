"""The HTML run report opened from the filesystem (file://) in headless Chromium.

Screenshots are kept as test artifacts in reports/e2e/ (git-ignored), or in
$KMATRIX_E2E_ARTIFACTS when set.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from pipeline.report.html_report import write_html
from pipeline.report.regressions import compare_runs
from tests.e2e.conftest import screenshot
from tests.unit.test_html_report import XSS, Case, FakeJob, make_run, sample_jobs

ARTIFACTS = Path(os.environ.get("KMATRIX_E2E_ARTIFACTS")
                 or Path(__file__).resolve().parents[2] / "reports" / "e2e")
PANIC = "assertion `left == right` failed: math is broken"


def _one_failing_test() -> list[FakeJob]:
    """Every job passes except crate-test/default, where one libtest test panics."""
    jobs = []
    for job in sample_jobs():
        if job.id == "kmod-build/6.12":
            job = FakeJob(job.id, "passed", job.axes, [Case("build")], 39.1)
        elif job.id == "kmod-test/6.12":
            job = FakeJob(job.id, "passed", job.axes,
                          [Case("vexfs.mount", suffix=".kunit"),
                           Case("vexfs.umount", suffix=".kunit")], 88.0)
        elif job.id == "crate-test/default":
            job.cases[2] = Case("tests::math_works", "failed", f"{PANIC} {XSS}",
                                "thread 'tests::math_works' panicked at src/lib.rs:35:9:\n"
                                f"{PANIC}\n  left: 4\n right: 5\n{XSS}", suffix=".test")
        jobs.append(job)
    return jobs


@pytest.fixture
def report(tmp_path: Path) -> Path:
    reports = tmp_path / "reports"
    before = _one_failing_test()
    before[4].cases[2] = Case("tests::math_works", suffix=".test")  # passed last time
    before[5].cases[2] = Case("tests::adds", "failed", "attempt to add with overflow",
                              suffix=".test")
    base = make_run(reports, "20261126-100000-aaaa", before,
                    started="2026-11-26T10:00:00+00:00", finished="2026-11-26T10:03:00+00:00")
    write_html(base, None)
    run = make_run(reports, "20261127-154601-3fa2", _one_failing_test())
    return write_html(run, compare_runs(run, base))


def _cells(driver: Any) -> dict[str, str]:
    from selenium.webdriver.common.by import By

    return {td.get_attribute("data-job"): td.get_attribute("data-status")
            for td in driver.find_elements(By.CSS_SELECTOR, "td.cell[data-job]")}


def test_report_in_chromium(chromium_driver: Any, report: Path) -> None:
    from selenium.webdriver.common.by import By

    driver = chromium_driver
    driver.get(report.as_uri())
    assert driver.title.startswith("FAILED")
    assert _cells(driver) == {
        "kmod-build/6.1": "passed", "kmod-build/6.12": "passed", "kmod-test/6.1": "passed",
        "kmod-test/6.12": "passed", "crate-test/default": "failed",
        "crate-test/userspace": "passed", "lint": "passed",
    }
    cell = driver.find_element(By.CSS_SELECTOR, 'td.cell[data-job="crate-test/default"]')
    assert "tests::math_works" in cell.text
    assert "math is broken" in cell.text
    # the status colours are applied: a failed cell is red-tinted, a passed one green-tinted
    failed_bg = cell.value_of_css_property("background-color")
    passed_bg = driver.find_element(By.CSS_SELECTOR, 'td.cell[data-job="lint"]') \
        .value_of_css_property("background-color")
    assert failed_bg != passed_bg
    # the failure message is shown as text; no script from it ran or exists
    assert driver.find_elements(By.TAG_NAME, "script") == []
    failures = driver.find_element(By.ID, "failures").text
    assert XSS in failures and "panicked at src/lib.rs:35:9" in failures
    regressions = driver.find_element(By.ID, "regressions").text
    assert "Newly failing" in regressions and "tests::math_works" in regressions
    assert "tests::adds" in regressions  # fixed
    path = screenshot(driver, ARTIFACTS / "report.png")
    print(f"screenshot: {path}")
    assert path.stat().st_size > 10_000


def test_report_links_work_from_the_filesystem(chromium_driver: Any, report: Path) -> None:
    from selenium.webdriver.common.by import By

    driver = chromium_driver
    driver.get(report.as_uri())
    cell = driver.find_element(By.CSS_SELECTOR, 'td.cell[data-job="crate-test/default"]')
    cell.find_element(By.CSS_SELECTOR, "ul.fails a").click()
    assert driver.current_url.endswith("#x-fail-crate-test-default-test-tests-math_works")
    cell = driver.find_element(By.CSS_SELECTOR, 'td.cell[data-job="crate-test/default"]')
    cell.find_element(By.LINK_TEXT, "log").click()
    assert driver.current_url == (report.parent / "crate-test/default/log.txt").as_uri()
    assert "crate-test/default log" in driver.find_element(By.TAG_NAME, "body").text
    driver.back()
    driver.find_element(By.CSS_SELECTOR, 'a[href="../20261126-100000-aaaa/index.html"]').click()
    assert "20261126-100000-aaaa" in driver.title


def test_failed_build_report_screenshot(chromium_driver: Any, tmp_path: Path) -> None:
    """The busier case: a failed kernel build, a cancelled job and a failing test."""
    from selenium.webdriver.common.by import By

    run = make_run(tmp_path, "20261127-154601-3fa2", sample_jobs())
    chromium_driver.get(write_html(run, None).as_uri())
    statuses = _cells(chromium_driver)
    assert statuses["kmod-build/6.12"] == "failed"
    assert statuses["kmod-test/6.12"] == "cancelled"
    text = chromium_driver.find_element(By.ID, "failures").text
    assert "implicit declaration of 'foo'" in text
    path = screenshot(chromium_driver, ARTIFACTS / "report-build-failure.png")
    print(f"screenshot: {path}")
