"""Merge per-job JUnit files into one run-level report."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from junitparser import JUnitXml, TestSuite


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


def write_suite(suite: TestSuite, path: Path) -> None:
    """Write one suite as a JUnit file (atomically)."""
    suite.update_statistics()
    xml = JUnitXml(name=suite.name)
    xml.add_testsuite(suite)
    xml.update_statistics()
    tmp = path.with_suffix(".tmp")
    xml.write(str(tmp), pretty=True)
    tmp.replace(path)


def merge_files(paths: Iterable[Path], out: Path, name: str) -> JUnitXml:
    """Merge JUnit files into `out`; unreadable inputs are skipped by the caller's choice."""
    merged = JUnitXml(name=name)
    for path in paths:
        xml = JUnitXml.fromfile(str(path))
        suites = [xml] if isinstance(xml, TestSuite) else list(xml)
        for suite in suites:
            merged.add_testsuite(suite)
    merged.update_statistics()
    for element in merged._elem.iter():  # drop the inputs' indentation before re-indenting
        if element.text is not None and not element.text.strip():
            element.text = None
        if element.tail is not None and not element.tail.strip():
            element.tail = None
    tmp = out.with_suffix(".tmp")
    merged.write(str(tmp), pretty=True)
    tmp.replace(out)
    return merged
