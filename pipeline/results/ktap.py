"""Convert KTAP v1 / TAP 13-14 (KUnit, kselftest) output to a JUnit test suite.

Input may be a raw serial-console log: printk prefixes such as ``[    1.234567]``
and ``[    1.234567][    T1]`` are stripped, unknown lines are kept as output.
Nesting is derived from *relative* indentation (2/4 spaces or tabs all work).

Naming scheme (leaves only): a test at path ``suite/sub/leaf`` becomes a case
with ``name = "suite.sub.leaf"`` and ``classname = "<suite_name>.suite.sub"``.
Only leaves become cases; a parent becomes a case itself only when its own
result is ``not ok`` while none of its children failed (e.g. suite init failed).
Duplicate names get a `` #2`` suffix.  A description's trailing ``# comment``
(kselftest's ``# exit=1``) is not part of the name.

Results: ``ok`` -> passed, ``not ok`` -> Failure, ``# SKIP`` -> Skipped, ``# TODO``
-> passed when ok, Skipped("TODO: ...") when not ok.  Diagnostics and unknown lines
before a result line are that test's output (Failure text / system-out).  ``#``
diagnostics that follow a ``not ok`` line (up to the next test at that level) are
part of its Failure text too, except ``# <next test's name>:`` lines (KUnit's own
diagnostics of the next test); they stay the next test's output as well.
``# Totals:`` and ``# <suite>: pass:N fail:N ...`` summaries are dropped; kselftest's
``#``-prefixed nested TAP is kept as plain output, not parsed.

Synthetic Error cases: a test whose result line never came (log ended, ``Kernel
panic`` stops parsing; ``BUG:``/``Oops``/``Call Trace:`` are remembered as the
likely cause) is reported under its own name with the last 40 log lines;
``<path>.missing results`` when a plan promised more results; ``<path>.plan
mismatch`` for more results than planned; ``bail out``; ``no results``;
``<path>.missing result line`` for a subtest block that never got its result line.
The parser never raises.
"""

from __future__ import annotations

import re
from collections import deque
from dataclasses import dataclass, field

import junitparser

from pipeline.results.text import clip, new_suite, parse_lines, unique, xml_safe

TAIL_LINES = 40
MAX_DEPTH = 64

_PREFIX_RE = re.compile(r"^(?:<\d+>)?\[\s*\d+\.\d+\](?:\[\s*[A-Za-z]*\d+\])? ?")
_VERSION_RE = re.compile(r"^K?TAP version \d+\s*$")
_PLAN_RE = re.compile(r"^1\.\.(\d+)\s*(?:#.*)?$")
_SUBTEST_RE = re.compile(r"^#\s*Subtest:\s*(.*)$")
_RESULT_RE = re.compile(r"^(not\s+)?ok(?:\s+(\d+)\b)?(?:\s*-)?(?:\s+(.*))?$")
_COMMENT_RE = re.compile(r"^(.*?)\s*(?<!\\)#\s*(.*)$")
_DIRECTIVE_RE = re.compile(r"^(skip|todo)\S*\s*:?\s*(.*)$", re.IGNORECASE)
_BAIL_RE = re.compile(r"^Bail out!\s*(.*)$")
_SUMMARY_RE = re.compile(r"^#\s*(?:Totals:|\S+: pass:\d+ fail:\d+)")
_CRASH_RE = re.compile(r"Kernel panic|BUG:|Oops|general protection fault|Call Trace:")
_ASSERT_RE = re.compile(
    r"(?:EXPECTATION|ASSERTION) FAILED at .*|(?:kunit )?test case (?:crashed|timed out).*"
)


@dataclass
class _Node:
    """A test that has a result line (or is still open at end of input)."""

    name: str
    ok: bool = True
    directive: str = ""  # "", "skip", "todo"
    reason: str = ""
    comment: str = ""
    output: list[str] = field(default_factory=list)
    children: _Group | None = None
    open: bool = False
    after: list[str] = field(default_factory=list)  # diagnostics after a `not ok` line


@dataclass
class _Group:
    """One KTAP document level: the subtests of one (parent) test."""

    indent: int | None
    name: str = ""
    version: bool = False
    plan: int | None = None
    results: list[_Node] = field(default_factory=list)
    pending: list[str] = field(default_factory=list)
    claimed: _Group | None = None  # finished child block awaiting our result line
    orphans: list[_Group] = field(default_factory=list)
    failed: _Node | None = None  # the last result, while it is `not ok` and nothing followed


@dataclass
class _Case:
    """Flat case ready for JUnit conversion."""

    path: list[str]
    kind: str  # passed | failed | skipped | error
    message: str = ""
    text: list[str] = field(default_factory=list)
    etype: str = ""


class _Parser:
    """Indentation-driven KTAP tree builder."""

    def __init__(self) -> None:
        self.root = _Group(None)
        self.stack = [self.root]
        self.tail: deque[str] = deque(maxlen=TAIL_LINES)
        self.crash = ""
        self.bail = ""
        self.stopped = False
        self.seen = False

    def feed(self, raw: str) -> None:
        """Process one line of input."""
        raw = raw.rstrip("\r\n")
        self.tail.append(raw)
        if self.stopped:
            return
        line = _PREFIX_RE.sub("", raw, count=1).expandtabs(8).rstrip()
        content = line.lstrip()
        indent = len(line) - len(content)
        if not self._structural(content, indent):
            self._other(content, line)

    def _structural(self, content: str, indent: int) -> bool:
        if _VERSION_RE.match(content):
            group = self._level(indent, "version")
            group.version = self.seen = True
        elif match := _SUBTEST_RE.match(content):
            self._level(indent, "subtest").name = match.group(1).strip()
        elif match := _PLAN_RE.match(content):
            group = self._level(indent, "")
            group.plan = min(int(match.group(1)), 10**6) if group.plan is None else group.plan
            self.seen = True
        elif match := _RESULT_RE.match(content):
            self._result(match, indent)
        elif match := _BAIL_RE.match(content):
            self.bail = "Bail out! " + match.group(1)
            self.stopped = True
        else:
            return False
        return True

    def _other(self, content: str, line: str) -> None:
        if _SUMMARY_RE.match(content):
            return
        if _CRASH_RE.search(content):
            self.crash = self.crash or content
            self.stopped = "Kernel panic" in content
        group = self.stack[-1]
        cut = min(group.indent or 0, len(line) - len(content))
        group.pending.append(line[cut:])
        if group.failed is not None and content.startswith("#"):
            group.failed.after.append(line[cut:])

    # -- tree building -----------------------------------------------------

    def _level(self, indent: int, opens: str) -> _Group:
        """Return the group at ``indent``, pushing/popping groups as needed."""
        if self.root.indent is None:
            self.root.indent = indent
        while len(self.stack) > 1 and indent < self.stack[-1].indent:
            self._pop()
        if indent < self.root.indent:
            self._wrap_root(indent)
        top = self.stack[-1]
        if len(self.stack) >= MAX_DEPTH:
            return top
        if indent > top.indent or (opens and top is not self.root and not _fresh(top, opens)):
            if indent == top.indent:
                self._pop()
            self.stack[-1].failed = None  # a nested block: what follows is the next test's
            group = _Group(indent)
            self.stack.append(group)
            return group
        return top

    def _wrap_root(self, indent: int) -> None:
        old = self.root
        self.root = _Group(indent, version=old.version)
        self.root.claimed = old
        self.stack = [self.root]

    def _pop(self) -> None:
        child = self.stack.pop()
        parent = self.stack[-1]
        if child.claimed is not None:
            if child.results:
                child.orphans.append(child.claimed)
            else:
                child.results = child.claimed.results
            child.claimed = None
        parent.pending.extend(child.pending)
        child.pending = []
        if parent.claimed is not None:
            parent.orphans.append(parent.claimed)
        parent.claimed = child

    def _result(self, match: re.Match[str], indent: int) -> None:
        group = self._level(indent, "")
        self.seen = True
        self.crash = ""
        negated, number, desc = match.groups()
        name, comment = _split_comment(desc or "")
        node = _Node(name or f"test {number or len(group.results) + 1}", ok=not negated)
        directive = _DIRECTIVE_RE.match(comment)
        if directive:
            node.directive, node.reason = directive.group(1).lower(), directive.group(2).strip()
        else:
            node.comment = comment
        node.output, group.pending = group.pending, []
        if group.failed is not None:  # the next test's own KUnit lines are not the failure's
            group.failed.after = [a for a in group.failed.after if not _names(a, node.name)]
        group.failed = node if negated and not node.directive else None
        expected = len(group.results) + 1
        if number is None or int(number) != expected:
            node.output.append(f"note: test number {number or 'missing'}, expected {expected}")
        node.children, group.claimed = group.claimed, None
        group.results.append(node)

    # -- finishing ---------------------------------------------------------

    def finish(self) -> list[_Case]:
        """Close open tests and flatten the tree into cases."""
        self._close_open()
        emitter = _Emitter(list(self.tail), self.bail or self.crash, bool(self.bail))
        emitter.walk(self.root, [])
        if self.bail:
            emitter.add(["bail out"], "error", self.bail, emitter.tail, "bail out")
        elif not emitter.cases and not (self.seen and self.root.plan == 0):
            msg = (
                "KTAP header found but no test results"
                if self.seen
                else ("no KTAP/TAP output found")
            )
            reason = f" ({self.crash})" if self.crash else ""
            emitter.add(["no results"], "error", msg + reason, emitter.tail, "no results")
        return emitter.cases

    def _close_open(self) -> None:
        """Turn groups still waiting for their result line into open nodes."""
        while True:
            top = self.stack[-1]
            if top.claimed is not None:
                child, top.claimed = top.claimed, None
                top.results.append(
                    _Node(child.name or f"test {len(top.results) + 1}", children=child, open=True)
                )
            if len(self.stack) == 1:
                return
            self._pop()


def _fresh(group: _Group, opens: str) -> bool:
    """Whether a header line of kind ``opens`` still belongs to ``group``."""
    used = bool(group.results or group.plan is not None or group.name)
    return not (used or (opens == "version" and group.version))


def _names(line: str, name: str) -> bool:
    """Whether a diagnostic line is about test `name` (KUnit: `# name: ...`)."""
    return bool(name) and line.lstrip().lstrip("#").lstrip().startswith(f"{name}:")


def _split_comment(desc: str) -> tuple[str, str]:
    match = _COMMENT_RE.match(desc)
    if not match:
        return desc.strip(), ""
    return match.group(1).strip(), match.group(2).strip()


class _Emitter:
    """Flattens the parsed tree into cases, adding synthetic error cases."""

    def __init__(self, tail: list[str], reason: str, bailed: bool) -> None:
        self.cases: list[_Case] = []
        self.tail = tail
        self.reason = reason
        self.bailed = bailed
        self.open_errors = 0

    def add(
        self,
        path: list[str],
        kind: str,
        message: str = "",
        text: list[str] | None = None,
        etype: str = "",
    ) -> None:
        """Append one case."""
        self.cases.append(_Case(path, kind, message, list(text or []), etype))

    def walk(self, group: _Group, path: list[str], check_plan: bool = True) -> int:
        """Emit cases below ``group``; return the number of failing/erroring cases."""
        bad = 0
        for node in group.results:
            bad += self._node(node, [*path, node.name])
        for orphan in group.orphans:
            opath = [*path, orphan.name or "(unnamed)"]
            bad += self.walk(orphan, opath) + 1
            self.add(
                [*opath, "missing result line"],
                "error",
                "subtest block ended without its result line",
                orphan.pending,
                "parse",
            )
        return bad + (self._plan_check(group, path) if check_plan else 0)

    def _node(self, node: _Node, path: list[str]) -> int:
        kids = node.children
        has_kids = kids is not None and bool(kids.results or kids.orphans)
        before = self.open_errors
        bad = self.walk(kids, path, not node.open) if kids is not None else 0
        if node.open:
            return bad + (self._open_error(node, path) if before == self.open_errors else 0)
        if has_kids and (node.ok or node.directive or bad):
            return bad
        return bad + self._leaf(node, path)

    def _open_error(self, node: _Node, path: list[str]) -> int:
        kids = node.children
        msg = f"output ended before the result line of '{node.name}'"
        if kids is not None and kids.plan is not None:
            msg += f" ({len(kids.results)} of {kids.plan} subtest results seen)"
        if self.reason:
            msg += f": {self.reason}"
        self.add(path, "error", msg, self.tail, "crash")
        self.open_errors += 1
        return 1

    def _leaf(self, node: _Node, path: list[str]) -> int:
        if node.directive == "skip":
            self.add(path, "skipped", node.reason or "skipped", node.output)
        elif node.directive == "todo":
            kind = "passed" if node.ok else "skipped"
            self.add(path, kind, "TODO: " + (node.reason or "not implemented"), node.output)
        elif node.ok:
            self.add(path, "passed", "", node.output)
        else:
            text = node.output + node.after
            self.add(path, "failed", _failure_message(text, node.comment), text, "not ok")
            return 1
        return 0

    def _plan_check(self, group: _Group, path: list[str]) -> int:
        got = len(group.results)
        if group.plan is None or got == group.plan or (self.bailed and got < group.plan):
            return 0
        if got > group.plan:
            msg = f"plan 1..{group.plan} but {got} results"
            self.add([*path, "plan mismatch"], "error", msg, [], "plan")
            return 1
        missing = group.plan - got
        msg = f"missing {missing} results (plan 1..{group.plan}, got {got})"
        if self.reason:
            msg += f"; output ended: {self.reason}"
        self.add([*path, "missing results"], "error", msg, self.tail, "missing")
        return 1


def _failure_message(text: list[str], comment: str) -> str:
    for line in text:
        match = _ASSERT_RE.search(line)
        if match:
            return match.group(0)
    return f"not ok: {comment}" if comment else "not ok"




def _to_junit(case: _Case, suite: str, name: str) -> junitparser.TestCase:
    classname = ".".join([suite, *case.path[:-1]])
    test = junitparser.TestCase(xml_safe(name), xml_safe(classname))
    text = clip(case.text)
    message = xml_safe(case.message)
    if case.kind == "failed":
        result = junitparser.Failure(message, case.etype or "not ok")
        result.text = text
        test.result = [result]
    elif case.kind == "error":
        result = junitparser.Error(message, case.etype or "error")
        result.text = text
        test.result = [result]
    elif case.kind == "skipped":
        test.result = [junitparser.Skipped(message)]
        if text:
            test.system_out = text
    elif text:
        test.system_out = text
    return test



def parse_ktap(text: str, suite_name: str = "ktap") -> junitparser.TestSuite:
    """Parse KTAP/TAP (KUnit, kselftest, serial console) output; never raises."""
    suite_name = str(suite_name)
    suite = new_suite(suite_name)
    try:
        parser = _Parser()
        parse_lines(text, parser.feed)
        cases = parser.finish()
    except Exception as exc:
        cases = [_Case(["parse error"], "error", f"internal parser error: {exc!r}")]
    used: set[str] = set()
    tests = [
        _to_junit(case, suite_name, unique(".".join(case.path) or "(unnamed)", used))
        for case in cases
    ]
    suite.add_testcases(tests)  # add_testcase() recounts each time: quadratic
    return suite
