"""Convert Rust libtest (`cargo test`) output to a JUnit test suite.

Both output formats are understood, also when mixed with cargo's own lines:

* the human format (``test a::b ... ok``, ``failures:`` blocks, ``test result:``),
  including ``--report-time`` (``ok <0.001s>``) and ``--nocapture`` interleaving;
* the JSON event format (``--format json --report-time``).

Naming scheme: every test case has ``classname = suite_name``.  Its ``name`` is
``<target>::<test path>`` where ``<target>`` is what cargo printed for the test
binary: ``unittests src/lib.rs``, ``tests/cli.rs`` or ``Doc-tests vexfs``.  If the
same target text appears for two different binaries (workspaces), the binary's
crate name is appended: ``unittests src/lib.rs (vexfs_core)``.  Without any
cargo header (raw test binary output) the name is the bare test path.  Remaining
duplicates get a `` #2``, `` #3`` ... suffix.

Synthetic cases: ``build`` (compile error before tests ran, first 20 lines from
the first ``error`` line), ``<target>::<test>`` as Error for a test that was
announced but never reported (crash/timeout), ``<target>::(missing results)``
when fewer results than ``running N tests`` arrived, and ``(no results)`` when the
log holds no libtest output at all.  The parser never raises.
"""

from __future__ import annotations

import json
import re
from collections import deque
from dataclasses import dataclass, field

import junitparser

from pipeline.results.text import clip, new_suite, parse_lines, unique, xml_safe

TAIL_LINES = 40
BUILD_LINES = 20

_HEADER_RE = re.compile(r"^\s*Running (?:(\S.*?) \(([^()]*)\)|(\S*/deps/\S+))\s*$")
_DOCTEST_RE = re.compile(r"^\s*Doc-tests (\S+)\s*$")
_RUNNING_RE = re.compile(r"^running (\d+) tests?$")
_TEST_RE = re.compile(r"^test (.+?) \.\.\. ?(.*)$")
_MODE_RE = re.compile(r"\s+-\s+(?:should panic(?: with .*)?|compile fail|compile|no_run|build)$")
_STATUS_RE = re.compile(r"^(ok|FAILED|ignored|bench:)(.*)$")
_TIME_RE = re.compile(r"<(\d+(?:\.\d+)?)s>")
_RESULT_RE = re.compile(r"^test result: ")
_BLOCK_RE = re.compile(r"^---- (.+?) (?:stdout|stderr) ----$")
_BUILD_ERR_RE = re.compile(r"^error(?:\[E\d+\])?: ")
_NOT_BUILD_RE = re.compile(r"^error: (?:test failed|doctest failed|\d+ targets? failed)")
_EXIT_RE = re.compile(r"process didn't exit successfully: .*\(([^()]*)\)\s*$")
_PANIC_NEW_RE = re.compile(r"panicked at (\S+?):?$")
_PANIC_OLD_RE = re.compile(r"panicked at (.+)$")


@dataclass
class _Case:
    """One libtest result before conversion to JUnit."""

    name: str
    status: str = "pending"  # passed | failed | ignored | error | pending
    message: str = ""
    output: list[str] = field(default_factory=list)
    time: float | None = None


@dataclass
class _Binary:
    """State for one test binary (one ``running N tests`` section)."""

    label: str
    expected: int | None = None
    cases: dict[str, _Case] = field(default_factory=dict)
    by_name: dict[str, list[_Case]] = field(default_factory=dict)
    finished: bool = False


class _Parser:
    """Line-driven state machine for libtest output (plain and JSON)."""

    def __init__(self) -> None:
        self.cases: list[_Case] = []
        self.binary: _Binary | None = None
        self.label = ""
        self.labels: dict[str, str] = {}
        self.block: _Case | None = None
        self.tail: deque[str] = deque(maxlen=TAIL_LINES)
        self.build: list[str] = []
        self.build_left = 0
        self.seen_output = False

    # -- driving -----------------------------------------------------------

    def feed(self, line: str) -> None:
        """Process one input line."""
        if self.build_left:
            self.build.append(line)
            self.build_left -= 1
        stripped = line.strip()
        if stripped.startswith("{") and stripped.endswith("}"):
            event = _load_json(stripped)
            if event is not None:
                self._json_event(event)
                self.tail.append(line)
                return
        self._plain(line)
        self.tail.append(line)

    def finish(self) -> list[_Case]:
        """Close open state at end of input and return all cases."""
        self._end_binary()
        if self.build:
            first = self.build[0].strip()
            self.cases.append(_Case("build", "error", first, self.build))
        elif not self.seen_output:
            msg = "no libtest output found in log"
            self.cases.append(_Case("(no results)", "error", msg, list(self.tail)))
        return self.cases

    # -- plain format ------------------------------------------------------

    def _plain(self, line: str) -> None:
        text = line.rstrip()
        if self._header(text):
            return
        running = _RUNNING_RE.match(text)
        if running:
            self._start_binary(int(running.group(1)))
            return
        if self.binary is None or self.binary.finished:
            self._outside(text)
            return
        self._inside(text)

    def _header(self, text: str) -> bool:
        """Handle cargo's ``Running``/``Doc-tests`` lines; True if consumed."""
        doc = _DOCTEST_RE.match(text)
        run = None if doc else _HEADER_RE.match(text)
        if not doc and not run:
            return False
        self._end_binary()
        if doc:
            self.label = self._unique_label(f"Doc-tests {doc.group(1)}", "doc:" + doc.group(1))
        else:
            label = run.group(1) or run.group(3)
            self.label = self._unique_label(label, run.group(2) or label)
        return True

    def _unique_label(self, label: str, binary: str) -> str:
        """Keep target labels distinct when two binaries print the same text."""
        owner = self.labels.setdefault(label, binary)
        if owner == binary:
            return label
        crate = re.sub(r"-[0-9a-f]{8,}$", "", binary.rsplit("/", 1)[-1])
        return f"{label} ({crate})"

    def _outside(self, text: str) -> None:
        """Lines outside a test binary section: look for build errors."""
        if not self.build and _BUILD_ERR_RE.match(text) and not _NOT_BUILD_RE.match(text):
            self.build = [text]
            self.build_left = BUILD_LINES - 1

    def _inside(self, text: str) -> None:
        assert self.binary is not None
        if _RESULT_RE.match(text):
            self.block = None
            self._end_binary()
            return
        block = _BLOCK_RE.match(text)
        if block:
            self.block = self._case(block.group(1), create=False)
            return
        test = _TEST_RE.match(text)
        if test:
            self.block = None
            self._test_line(test.group(1), test.group(2))
            return
        if text == "failures:" or text == "successes:":
            self.block = None
            return
        if self._bare_result(text):
            return
        target = self.block or self._pending()
        if target is not None:
            target.output.append(text)

    def _test_line(self, raw_name: str, status: str) -> None:
        name = _MODE_RE.sub("", raw_name.rstrip())
        case = self._new_case(name)
        if not self._apply_status(case, status):
            case.status = "pending"
            if status.strip():
                case.output.append(status)

    def _bare_result(self, text: str) -> bool:
        """A lone ``ok``/``FAILED`` line completes a test interrupted by output."""
        pending = self._pending()
        if pending is None:
            return False
        return self._apply_status(pending, text.strip())

    def _pending(self) -> _Case | None:
        if self.binary is None:
            return None
        for case in reversed(self.binary.cases.values()):
            if case.status == "pending":
                return case
        return None

    @staticmethod
    def _apply_status(case: _Case, status: str) -> bool:
        match = _STATUS_RE.match(status)
        if not match:
            return False
        word, rest = match.groups()
        timing = _TIME_RE.search(rest)
        if timing:
            case.time = float(timing.group(1))
        if word == "ok":
            case.status = "passed"
        elif word == "FAILED":
            case.status = "failed"
            case.message = rest.strip(" ()") if "time limit" in rest else ""
        elif word == "ignored":
            case.status = "ignored"
            case.message = rest.lstrip(", ").strip() or "ignored"
        else:
            case.status = "passed"
            case.output.append("bench:" + rest)
        return True

    # -- JSON format -------------------------------------------------------

    def _json_event(self, event: dict) -> None:
        kind, what = event.get("type"), event.get("event")
        if kind == "suite" and what == "started":
            self._start_binary(_as_int(event.get("test_count")))
        elif kind == "suite" and what in ("ok", "failed"):
            self._end_binary()
        elif kind == "test":
            self._json_test(event, what)
        elif kind == "bench":
            case = self._new_case(str(event.get("name", "?")))
            case.status = "passed"
            case.output.append(
                f"median {event.get('median')} ns/iter (+/- {event.get('deviation')})"
            )

    def _json_test(self, event: dict, what: object) -> None:
        name = str(event.get("name", "?"))
        if self.binary is None or self.binary.finished:
            self._start_binary(None)
        if what == "started":
            self._new_case(name)
            return
        if what not in ("ok", "failed", "ignored"):
            return  # e.g. "timeout": a warning, the test is still running
        case = self._case(name, create=True)
        case.time = _as_float(event.get("exec_time"))
        case.status = {"ok": "passed", "failed": "failed"}.get(what, "ignored")
        case.message = str(event.get("message") or "")
        if what == "ignored" and not case.message:
            case.message = "ignored"
        stdout = event.get("stdout")
        if isinstance(stdout, str):
            case.output.extend(stdout.splitlines())

    # -- binaries and cases ------------------------------------------------

    def _start_binary(self, expected: int | None) -> None:
        self._end_binary()
        self.seen_output = True
        self.binary = _Binary(self.label, expected)

    def _end_binary(self) -> None:
        binary = self.binary
        if binary is None or binary.finished:
            return
        binary.finished = True
        self.block = None
        done = sum(1 for c in binary.cases.values() if c.status != "pending")
        missing = (binary.expected or 0) - done
        pending = [c for c in binary.cases.values() if c.status == "pending"]
        self._mark_crashed(binary, pending, missing)
        self.cases.extend(binary.cases.values())

    def _mark_crashed(self, binary: _Binary, pending: list[_Case], missing: int) -> None:
        tail = list(self.tail)
        reason = _exit_reason(tail)
        count = f"{missing} of {binary.expected} results missing" if missing > 0 else ""
        detail = "; ".join(p for p in (count, reason) if p)
        for case in pending:
            case.status = "error"
            case.message = "test started but never reported a result" + (
                f" ({detail})" if detail else ""
            )
            if not case.output:
                case.output.extend(["--- log tail ---", *tail])
        if missing > 0 and not pending:
            name = self._qualify("(missing results)")
            msg = f"{count}: test binary output ended early" + (f" ({reason})" if reason else "")
            binary.cases[name] = _Case(name, "error", msg, tail)

    def _qualify(self, name: str) -> str:
        label = self.binary.label if self.binary else self.label
        return f"{label}::{name}" if label else name

    def _new_case(self, name: str) -> _Case:
        assert self.binary is not None
        full = self._qualify(name)
        same = self.binary.by_name.setdefault(full, [])
        unique = f"{full} #{len(same) + 1}" if same else full
        while unique in self.binary.cases:
            unique += "'"
        case = _Case(unique)
        same.append(case)
        self.binary.cases[unique] = case
        return case

    def _case(self, name: str, create: bool) -> _Case | None:
        """Case called ``name`` in the current binary (oldest pending, else latest)."""
        if self.binary is None:
            return None
        same = self.binary.by_name.get(self._qualify(name), [])
        pending = [c for c in same if c.status == "pending"]
        if pending or same:
            return (pending or same)[0 if pending else -1]
        return self._new_case(name) if create else None


def _load_json(text: str) -> dict | None:
    try:
        value = json.loads(text)
    except (ValueError, RecursionError):
        return None
    return value if isinstance(value, dict) and "type" in value else None


def _as_int(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _as_float(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if value == value and abs(value) != float("inf") else None


def _exit_reason(lines: list[str]) -> str:
    for line in reversed(lines):
        match = _EXIT_RE.search(line)
        if match:
            return match.group(1)
    return ""


def panic_message(lines: list[str]) -> str:
    """Best one-line summary of a failed test's output (the panic line)."""
    for i, line in enumerate(lines):
        if "panicked at" not in line:
            continue
        new = _PANIC_NEW_RE.search(line)
        if new:
            following = next((x.strip() for x in lines[i + 1 :] if x.strip()), "")
            return f"panicked at {new.group(1)}: {following}".rstrip(": ")
        old = _PANIC_OLD_RE.search(line)
        return "panicked at " + old.group(1) if old else line.strip()
    for line in lines:
        if "did not panic as expected" in line:
            return line.strip().removeprefix("note: ")
    return next((x.strip() for x in lines if x.strip()), "test failed")




def _to_junit(case: _Case, classname: str) -> junitparser.TestCase:
    test = junitparser.TestCase(xml_safe(case.name), xml_safe(classname), case.time)
    text = clip(case.output)
    if case.status == "failed":
        message = case.message or panic_message(case.output)
        kind = "panic" if "panicked at" in text else "failure"
        result = junitparser.Failure(xml_safe(message), kind)
        result.text = text
        test.result = [result]
    elif case.status == "ignored":
        test.result = [junitparser.Skipped(xml_safe(case.message))]
    elif case.status == "error":
        kind = "build" if case.name == "build" else "crash"
        result = junitparser.Error(xml_safe(case.message), kind)
        result.text = text
        test.result = [result]
    elif text:
        test.system_out = text
    return test



def parse_libtest(text: str, suite_name: str = "libtest") -> junitparser.TestSuite:
    """Parse ``cargo test`` output (plain or JSON) into a JUnit suite; never raises."""
    suite = new_suite(suite_name)
    try:
        parser = _Parser()
        parse_lines(text, parser.feed)
        cases = parser.finish()
    except Exception as exc:
        cases = [_Case("(parse error)", "error", f"internal parser error: {exc!r}")]
    used: set[str] = set()
    tests = []
    for case in cases:
        case.name = unique(case.name, used)
        tests.append(_to_junit(case, str(suite_name)))
    suite.add_testcases(tests)  # add_testcase() recounts each time: quadratic
    return suite
