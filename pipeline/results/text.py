"""Text helpers shared by the converters: XML-safe text, clipped output, unique names."""

from __future__ import annotations

import re
from collections.abc import Callable

import junitparser

MAX_TEXT_LINES = 400
_XML_BAD_RE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def xml_safe(text: str) -> str:
    """Replace characters that cannot appear in XML 1.0."""
    return _XML_BAD_RE.sub("\ufffd", text)


def clip(lines: list[str], limit: int = MAX_TEXT_LINES) -> str:
    """Join lines without leading/trailing blank ones, keeping the last `limit`."""
    while lines and not lines[0].strip():
        lines = lines[1:]
    while lines and not lines[-1].strip():
        lines = lines[:-1]
    if len(lines) > limit:
        cut = len(lines) - limit
        lines = [f"... {cut} earlier lines omitted ...", *lines[-limit:]]
    return xml_safe("\n".join(lines))


def unique(name: str, used: set[str]) -> str:
    """`name`, or `name #2`, `name #3`... so names are unique within a suite."""
    candidate, n = name, 1
    while candidate in used:
        n += 1
        candidate = f"{name} #{n}"
    used.add(candidate)
    return candidate


def parse_lines(text: str | bytes, feed: Callable[[str], None]) -> None:
    """Feed each line of (possibly binary) text to a parser."""
    if isinstance(text, bytes | bytearray):
        text = bytes(text).decode("utf-8", "replace")
    for line in str(text).splitlines():
        feed(line)


def new_suite(name: str) -> junitparser.TestSuite:
    """An empty suite with an XML-safe name."""
    return junitparser.TestSuite(xml_safe(str(name)))
