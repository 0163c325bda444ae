"""A build step as one JUnit test case whose failure message carries the first errors."""

from __future__ import annotations

import re

from junitparser import Error, Failure, TestCase

MAX_ERROR_LINES = 20
# gcc/clang ("file.c:3:5: error: ..."), kbuild/make ("make[2]: *** ..."),
# rustc/cargo ("error[E0308]: ...", "error: could not compile"), ld ("undefined reference").
ERROR_RE = re.compile(
    r"(:\d+(:\d+)?: (fatal )?error:)|(^error(\[E\d+\])?:)|(\*\*\* )|(undefined reference)"
    r"|(^ERROR: )",
)
WARNING_RE = re.compile(r":\d+(:\d+)?: warning:|^warning: ")


def first_errors(output: str, limit: int = MAX_ERROR_LINES) -> list[str]:
    """The first error lines of a compiler log, each with the lines that explain it."""
    lines = output.splitlines()
    picked: list[str] = []
    for index, line in enumerate(lines):
        if ERROR_RE.search(line):
            # keep the error and its indented/context lines (source excerpt, carets, notes)
            picked.append(line)
            for follow in lines[index + 1:index + 4]:
                if follow.startswith((" ", "\t", "  |", "   ")) and not ERROR_RE.search(follow):
                    picked.append(follow)
                else:
                    break
        if len(picked) >= limit:
            break
    return picked[:limit]


def count_warnings(output: str) -> int:
    """Number of compiler warnings in a log."""
    return sum(1 for line in output.splitlines() if WARNING_RE.search(line))


def tail(output: str, lines: int = MAX_ERROR_LINES) -> str:
    """The last lines of a log."""
    return "\n".join(output.rstrip().splitlines()[-lines:])


def step_case(
    classname: str,
    name: str,
    output: str,
    exit_code: int | None,
    seconds: float,
    error: str | None = None,
) -> TestCase:
    """One test case for a step: passed, failed (with first errors) or errored (killed)."""
    case = TestCase(name=name, classname=classname, time=round(seconds, 3))
    if error and exit_code in (None, 0):
        result = Error(error, "infrastructure")
        result.text = tail(output, 40)
        case.result = [result]
    elif exit_code != 0:
        errors = first_errors(output)
        message = errors[0].strip() if errors else f"exited with status {exit_code}"
        if error:
            message = f"{error}: {message}"
        result = Failure(message[:500], "build" if errors else "exit-status")
        result.text = "\n".join(errors) if errors else tail(output, 40)
        case.result = [result]
    warnings = count_warnings(output)
    if warnings:
        case.system_err = f"{warnings} compiler warning(s)"
    return case
