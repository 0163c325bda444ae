"""`pipeline convert`: a KTAP or libtest log as a JUnit XML file (or on stdout)."""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from junitparser import JUnitXml

from pipeline.errors import InputError
from pipeline.fsutil import atomic_path


def convert(log: str, fmt: str, name: str | None, output: str | None) -> None:
    """Parse `log` ('-': stdin) as `fmt` (ktap or libtest) into one JUnit suite named
    `name` (default: the log's stem, or the format) and write it to `output` (atomically)
    or stdout. InputError when the log cannot be read or the output written."""
    if log == "-":
        text = sys.stdin.read()
    else:
        try:
            text = Path(log).read_text(encoding="utf-8", errors="replace")
        except OSError as exc:
            raise InputError(f"{log}: cannot read: {exc.strerror or exc}") from None
    name = name or (Path(log).stem if log != "-" else fmt)
    if fmt == "ktap":
        from pipeline.results.ktap import parse_ktap

        suite = parse_ktap(text, suite_name=name)
    else:
        from pipeline.results.libtest import parse_libtest

        suite = parse_libtest(text, suite_name=name)
    xml = JUnitXml(name=name)
    suite.update_statistics()
    xml.add_testsuite(suite)
    xml.update_statistics()
    if output:
        try:
            with atomic_path(Path(output)) as tmp:
                xml.write(str(tmp), pretty=True)
        except OSError as exc:
            raise InputError(f"-o {output}: cannot write: {exc.strerror or exc}") from None
    else:
        sys.stdout.write(_xml_text(xml))


def _xml_text(xml: JUnitXml) -> str:
    with tempfile.NamedTemporaryFile("r", suffix=".xml") as tmp:
        xml.write(tmp.name, pretty=True)
        return Path(tmp.name).read_text()
