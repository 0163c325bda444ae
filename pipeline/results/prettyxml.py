"""JUnit files written as junitparser's write(pretty=True) writes them, in one pass.

junitparser pretty-prints by serializing the tree with ElementTree, parsing that text again
with xml.dom.minidom and writing minidom's toprettyxml(): for a run's merged junit.xml
(thousands of cases) that detour is most of the time the report takes. pretty_bytes() writes
the same bytes straight from the tree for what JUnit files hold (elements, attributes,
text), escaping as this Python's minidom does; for anything else (comments, characters
XML does not allow, namespaces, ...) it returns None and write_pretty() lets junitparser
do it, errors included (tests/unit/test_prettyxml.py compares both).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

# the characters XML 1.0 does not allow (its Char production's complement, cheap to compile)
_INVALID = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
_PROBE = "&<>\"'\n\r\t"
Escape = Callable[[str], str]
_ESCAPES: list[tuple[Escape, Escape] | None] = []


def _escapes() -> tuple[Escape, Escape] | None:
    """(text, attribute value) escaping as minidom writes them (it differs between Python
    versions), learnt once from minidom itself; None for a minidom we do not know."""
    if not _ESCAPES:
        _ESCAPES.append(_learn_escapes())
    return _ESCAPES[0]


def _learn_escapes() -> tuple[Escape, Escape] | None:
    import inspect
    from xml.dom import minidom

    write_data = getattr(minidom, "_write_data", None)
    try:
        arity = len(inspect.signature(write_data).parameters)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    if arity not in (2, 3):
        return None

    def table(*flag: bool) -> dict[int, str]:
        mapping = {}
        for char in _PROBE:
            out: list[str] = []
            write_data(type("W", (), {"write": staticmethod(out.append)}), char, *flag)
            if "".join(out) != char:
                mapping[ord(char)] = "".join(out)
        return mapping

    def escaper(mapping: dict[int, str]) -> Escape:
        special = re.compile("[" + re.escape("".join(map(chr, mapping))) + "]")
        return lambda text: text.translate(mapping) if special.search(text) else text

    if arity == 2:
        both = escaper(table())
        return both, both
    return escaper(table(False)), escaper(table(True))


def _text(value: str) -> str:
    """Text as the XML parser hands it back: line ends normalized (CR LF, CR -> LF)."""
    return value.replace("\r\n", "\n").replace("\r", "\n") if "\r" in value else value


def _element(elem: Any, indent: str, out: list[str], text: Escape, attr: Escape) -> bool:
    """Append minidom's Element.writexml() of `elem`; False for what it cannot write."""
    tag = elem.tag
    if not isinstance(tag, str) or "{" in tag:
        return False
    out.append(f"{indent}<{tag}")
    for name, value in elem.attrib.items():
        if not isinstance(value, str) or "{" in name or _INVALID.search(value):
            return False
        out.append(f' {name}="{attr(value)}"')
    nodes: list[Any] = []
    for value in (elem.text, *(x for child in elem for x in (child, child.tail))):
        if isinstance(value, str):
            if _INVALID.search(value):
                return False
            if value:
                nodes.append(_text(value))
        elif value is not None:
            nodes.append(value)
    if not nodes:
        out.append("/>\n")
    elif len(nodes) == 1 and isinstance(nodes[0], str):
        out.append(f">{text(nodes[0])}</{tag}>\n")
    else:
        out.append(">\n")
        inner = indent + "\t"
        for node in nodes:
            if isinstance(node, str):
                out.append(text(f"{inner}{node}\n"))
            elif not _element(node, inner, out, text, attr):
                return False
        out.append(f"{indent}</{tag}>\n")
    return True


def pretty_bytes(elem: Any) -> bytes | None:
    """What junitparser's write(pretty=True) writes for the tree `elem`, or None."""
    escapes = _escapes()
    if escapes is None or (isinstance(elem.tail, str) and elem.tail.strip()):
        return None
    out = ['<?xml version="1.0" encoding="utf-8"?>\n']
    if not _element(elem, "", out, *escapes):
        return None
    return "".join(out).encode("utf-8")


def write_pretty(xml: Any, path: Path) -> None:
    """xml.write(path, pretty=True) of a junitparser object, the same bytes faster."""
    data = pretty_bytes(xml._elem)
    if data is None:
        xml.write(str(path), pretty=True)
    else:
        Path(path).write_bytes(data)
