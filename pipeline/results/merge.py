"""Merge per-job JUnit files into one run-level report."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path

from junitparser import Error, JUnitXml, Skipped, TestCase, TestSuite

from pipeline.fsutil import atomic_path
from pipeline.results.prettyxml import write_pretty
from pipeline.results.status import CANCELLED, INTERRUPTED, SKIPPED

NOT_RUN_STATUSES = (SKIPPED, CANCELLED, INTERRUPTED)


def suite_counts(suite: TestSuite) -> dict[str, int]:
    """tests/failures/errors/skipped of a suite, computed from its cases."""
    counts = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
    for case in suite:
        counts["tests"] += 1
        kinds = {type(r).__name__ for r in case.result}
        if "Failure" in kinds:
            counts["failures"] += 1
        elif "Error" in kinds:
            counts["errors"] += 1
        elif "Skipped" in kinds:
            counts["skipped"] += 1
    return counts


def write_suite(suite: TestSuite, path: Path,
                filter_text: Callable[[str], str] | None = None) -> None:
    """Write one suite as a JUnit file (atomically); `filter_text` may rewrite the XML
    (e.g. mask secrets) before it is stored."""
    suite.update_statistics()
    xml = JUnitXml(name=suite.name)
    xml.add_testsuite(suite)
    xml.update_statistics()
    with atomic_path(path) as tmp:
        write_pretty(xml, tmp)
        if filter_text is not None:
            text = tmp.read_text(encoding="utf-8")
            filtered = filter_text(text)
            if filtered != text:
                tmp.write_text(filtered, encoding="utf-8")


NOT_RUN = "(job not run)"  # the one case of a selected job that left no JUnit


def placeholder_suite(job: str, status: str, reason: str) -> TestSuite:
    """A selected job without JUnit of its own as one case, so a CI server that reads the
    merged junit.xml knows it exists: skipped (skipped, cancelled, interrupted: with the
    reason) or an error (it failed before writing any)."""
    suite = TestSuite(job)
    case = TestCase(NOT_RUN, classname=job)
    text = f"{status}: {reason[:2000]}" if reason else status
    case.result = [Skipped(message=text) if status in NOT_RUN_STATUSES else
                   Error(message=text)]
    suite.add_testcase(case)
    return suite


def merge_files(paths: Iterable[Path], out: Path, name: str,
                skipped: list[Path] | None = None,
                extra: Iterable[TestSuite] = ()) -> JUnitXml:
    """Merge JUnit files into `out` (atomically), then the `extra` suites (jobs without a
    file: placeholder_suite). An input that cannot be read or parsed is left out (and
    appended to `skipped`): one broken job file must not lose the run's report."""
    merged = JUnitXml(name=name)
    for path in paths:
        try:
            xml = JUnitXml.fromfile(str(path))
        except Exception:  # OSError, XML syntax errors of the parser in use, ...
            if skipped is not None:
                skipped.append(path)
            continue
        suites = [xml] if isinstance(xml, TestSuite) else list(xml)
        for suite in suites:
            merged.add_testsuite(suite)
    for suite in extra:
        suite.update_statistics()
        merged.add_testsuite(suite)
    merged.update_statistics()
    for element in merged._elem.iter():  # drop the inputs' indentation before re-indenting
        if element.text is not None and not element.text.strip():
            element.text = None
        if element.tail is not None and not element.tail.strip():
            element.tail = None
    with atomic_path(out) as tmp:
        write_pretty(merged, tmp)
    return merged
