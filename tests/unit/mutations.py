"""Shared by the converters' property tests: mutate a log, check a suite round-trips."""

from __future__ import annotations

import random
from pathlib import Path

import junitparser

KINDS = 6  # truncate, shuffle, insert a line, re-indent a line, splice text, replace all


def mutate(text: str, seed: int, kind: int, garbage: str) -> str:
    """One deterministic mutation of `text` (kind in range(KINDS))."""
    rng = random.Random(seed)
    lines = text.splitlines()
    if kind == 0 and lines:
        return "\n".join(lines[: rng.randrange(len(lines) + 1)])
    if kind == 1:
        rng.shuffle(lines)
        return "\n".join(lines)
    if kind == 2 and lines:
        lines.insert(rng.randrange(len(lines) + 1), garbage)
        return "\n".join(lines)
    if kind == 3 and lines:
        i = rng.randrange(len(lines))
        lines[i] = " " * rng.randrange(9) + lines[i].lstrip()
        return "\n".join(lines)
    if kind == 4:
        cut = rng.randrange(len(text) + 1)
        return text[:cut] + garbage + text[cut:]
    return garbage


def roundtrip(suite: junitparser.TestSuite, path: Path) -> None:
    """The suite writes, reads back with the same count, and has unique case names."""
    xml = junitparser.JUnitXml()
    xml.add_testsuite(suite)
    xml.write(str(path))
    reread = junitparser.JUnitXml.fromfile(str(path))
    assert sum(s.tests for s in reread) == suite.tests
    names = [case.name for case in suite]
    assert len(names) == len(set(names))
