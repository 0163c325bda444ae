"""JUnit without junitparser's detours: pipeline.results.prettyxml writes the bytes its
write(pretty=True) writes, regressions.statuses_from_xml reads what its objects give."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from junitparser import Error, Failure, JUnitXml, Skipped, TestCase, TestSuite

from pipeline.results.merge import merge_files, write_suite
from pipeline.results.prettyxml import pretty_bytes, write_pretty

ROOT = Path(__file__).resolve().parents[2]


def junitparser_bytes(xml: JUnitXml | TestSuite, tmp_path: Path) -> bytes:
    path = tmp_path / "reference.xml"
    xml.write(str(path), pretty=True)
    return path.read_bytes()


def odd_suite() -> JUnitXml:
    suite = TestSuite("odd & <suite> \"quoted\"")
    texts = ["plain", "line one\nline two\n", "tabs\tand 'quotes' \"double\"", "a\r\nb\rc",
             "<xml> & ]]> entities &amp;", "unicode: é ü 日本 🎉", "   ", "\n\n", "x" * 2000,
             "trailing space ", "\ttab first"]
    for i, text in enumerate(texts):
        case = TestCase(f"case {i} {text[:20]}", classname=f"cls.{i}", time=0.5 * i)
        kind = (Failure, Error, Skipped)[i % 3]
        case.result = [kind(message=text, type_=f"t{i}")]
        case.result[0].text = text
        case.system_out = text if i % 2 else None
        suite.add_testcase(case)
    suite.add_property("key \n value", "v\tal\rue")
    xml = JUnitXml("run & co")
    xml.add_testsuite(suite)
    xml.add_testsuite(TestSuite("empty"))
    xml.update_statistics()
    return xml


def test_the_same_bytes_as_junitparser_on_odd_content(tmp_path: Path) -> None:
    xml = odd_suite()
    assert pretty_bytes(xml._elem) == junitparser_bytes(xml, tmp_path)


def test_the_same_bytes_for_mixed_content_and_whitespace(tmp_path: Path) -> None:
    root = ET.fromstring("<testsuites><testsuite name='s'>text<testcase name='a'/>tail"
                         "<testcase name='b'>  </testcase>\n<x/>more</testsuite></testsuites>")
    xml = JUnitXml.fromelem(root)
    assert pretty_bytes(root) == junitparser_bytes(xml, tmp_path)


@pytest.mark.parametrize("log", sorted((ROOT / "tests" / "fixtures").glob("*/*.log")),
                         ids=lambda p: p.name)
def test_the_same_bytes_for_the_converters_junit(log: Path, tmp_path: Path) -> None:
    """KTAP and libtest logs (kernel panics, compiler errors, ...) as the jobs write them."""
    from pipeline.results.ktap import parse_ktap
    from pipeline.results.libtest import parse_libtest

    parse = parse_ktap if log.parent.name == "ktap" else parse_libtest
    suite = parse(log.read_text(encoding="utf-8", errors="replace"), suite_name=log.stem)
    suite.update_statistics()
    xml = JUnitXml(name=log.stem)
    xml.add_testsuite(suite)
    xml.update_statistics()
    ours = pretty_bytes(xml._elem)
    assert ours is not None and ours == junitparser_bytes(xml, tmp_path)


def test_what_it_cannot_write_is_left_to_junitparser(tmp_path: Path) -> None:
    root = ET.fromstring("<testsuites><testsuite name='s'/></testsuites>")
    root[0].append(ET.Comment("a comment"))
    assert pretty_bytes(root) is None
    bad = odd_suite()
    case = TestCase("ctrl")
    case.system_out = "bell \x07"  # not allowed in XML: junitparser's error stays the error
    next(iter(bad)).add_testcase(case)
    assert pretty_bytes(bad._elem) is None
    with pytest.raises(Exception) as ours:
        write_pretty(bad, tmp_path / "ours.xml")
    with pytest.raises(Exception) as theirs:
        bad.write(str(tmp_path / "theirs.xml"), pretty=True)
    assert type(ours.value) is type(theirs.value)


def test_merge_and_write_suite_write_what_they_wrote_before(tmp_path: Path) -> None:
    xml = odd_suite()
    parts = []
    for i, suite in enumerate(xml):
        path = tmp_path / f"job{i}.xml"
        write_suite(suite, path)
        reference = JUnitXml(name=suite.name)
        reference.add_testsuite(suite)
        reference.update_statistics()
        assert path.read_bytes() == junitparser_bytes(reference, tmp_path)
        parts.append(path)
    merged = merge_files(parts, tmp_path / "merged.xml", name="run")
    assert (tmp_path / "merged.xml").read_bytes() == junitparser_bytes(merged, tmp_path)


def _statuses_by_junitparser(xml: JUnitXml | TestSuite) -> dict[tuple[str, str], tuple]:
    """regressions.statuses_from_xml as it was written on junitparser's objects."""
    from pipeline.report.regressions import _RANK

    out: dict[tuple[str, str], tuple] = {}
    for suite in [xml] if isinstance(xml, TestSuite) else list(xml):
        for case in suite:
            status, message = "passed", ""
            for result in case.result:
                found = {"Failure": "failed", "Error": "error",
                         "Skipped": "skipped"}.get(type(result).__name__)
                if found and _RANK[found] > _RANK[status]:
                    status, message = found, (result.message or "")
            classname = case.classname or ""
            name = f"{classname}.{case.name}" if classname else (case.name or "")
            key = (suite.name or classname, name)
            if key not in out or _RANK[status] > _RANK[out[key][0]]:
                out[key] = (status, message)
    return out


def test_regressions_read_the_statuses_junitparser_reads(tmp_path: Path) -> None:
    from pipeline.report.regressions import statuses_from_xml

    nested = ET.fromstring(
        "<testsuites><testsuite name='outer'><testcase name='a'><skipped/><failure "
        "message='m1'/><failure message='m2'/></testcase><testsuite name='inner'><testcase "
        "classname='c' name='b'><system-out>x</system-out><error/></testcase></testsuite>"
        "<testcase name='a'/><testcase/></testsuite><testsuite><testcase name='z' "
        "classname='k'/></testsuite></testsuites>")
    documents = [odd_suite(), JUnitXml.fromelem(nested), next(iter(odd_suite()))]
    for log in sorted((ROOT / "tests" / "fixtures").glob("*/*.log")):
        from pipeline.results.ktap import parse_ktap
        from pipeline.results.libtest import parse_libtest

        parse = parse_ktap if log.parent.name == "ktap" else parse_libtest
        documents.append(parse(log.read_text(errors="replace"), suite_name=log.stem))
    for xml in documents:
        ours = {k: (v.status, v.message) for k, v in statuses_from_xml(xml).items()}
        assert ours == _statuses_by_junitparser(xml)
