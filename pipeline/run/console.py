"""The VM console protocol: markers, the live watch of a run's lines, KTAP and findings.

The init prints START_MARKER once the pseudo filesystems are mounted, runs the command and
prints ``KMATRIX-EXIT: <code>``. Kernel lines carry a printk timestamp; the command's own
lines do not. scan_console() finds kernel splats (BUG, WARNING, Oops, KASAN, ...) in the
console text; extract_ktap() keeps the KTAP between the markers.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

START_MARKER = "KMATRIX-START"
EXIT_MARKER = "KMATRIX-EXIT: "

_TIMESTAMP = re.compile(r"^\[\s*\d+\.\d+\] ?")
_EXIT_RE = re.compile(re.escape(EXIT_MARKER) + r"(-?\d+)\s*$")
_PANIC_RE = re.compile(r"Kernel panic - not syncing.*")
_KTAP_LINE = re.compile(r"^\s*(KTAP version \d+|TAP version \d+|\d+\.\.\d+|(not )?ok \d+|#(\s|$))")
_KTAP_RESULT = re.compile(r"^\s*(not )?ok \d+")


@dataclass(frozen=True)
class Finding:
    """A suspicious kernel message found in the console text."""

    kind: str
    line_no: int  # 1-based line number in the console text
    excerpt: str



@dataclass
class _Watch:
    """Live state of one run, fed line by line."""

    t0: float
    lines: list[tuple[float, str]] = field(default_factory=list)
    start_t: float | None = None
    exit_t: float | None = None
    exit_code: int | None = None
    panic: str | None = None
    panic_t: float | None = None
    progress_t: float | None = None
    last_output_t: float = 0.0
    last_result: str = ""

    def feed(self, now: float, line: str) -> None:
        self.lines.append((now, line))
        self.last_output_t = now
        text = _TIMESTAMP.sub("", line)
        if self.start_t is None and text.strip().endswith(START_MARKER):
            self.start_t = self.progress_t = now
        elif self.start_t is not None and self.exit_t is None and (m := _EXIT_RE.search(text)):
            self.exit_t, self.exit_code = now, int(m.group(1))
        if self.panic is None and (m := _PANIC_RE.search(text)):
            self.panic, self.panic_t = m.group(0).strip(), now
        if _KTAP_RESULT.match(text):
            self.progress_t, self.last_result = now, text.strip()



def extract_ktap(lines: list[str]) -> str:
    """KTAP text between the markers, printk timestamps stripped.

    The command's own output (lines without a printk timestamp) is kept whole; kernel
    messages are kept only when they look like KTAP (in-kernel KUnit output), so module
    load chatter and splats stay out of the KTAP (they remain in the console).
    """
    out: list[str] = []
    started = False
    for line in lines:
        text = _TIMESTAMP.sub("", line)
        if not started:
            started = text.strip().endswith(START_MARKER)
            continue
        if _EXIT_RE.search(text):
            break
        if text == line or _KTAP_LINE.match(text):
            out.append(text)
    return "\n".join(out) + ("\n" if out else "")



# First matching pattern wins for a line. Taint: loading an out-of-tree (O) or unsigned
# (E) module and running KUnit tests (N) taint the kernel by design, so their messages
# ("loading out-of-tree module taints kernel", "module verification failed ... tainting
# kernel") are not findings; a "Tainted:" header with any other flag, or lock debugging
# being disabled by a taint, is.
_FINDING_PATTERNS: list[tuple[str, re.Pattern[str]]] = [
    ("kasan", re.compile(r"\bKASAN: ")),
    ("ubsan", re.compile(r"\bUBSAN: ")),
    ("kfence", re.compile(r"\bKFENCE: ")),
    ("kmemleak", re.compile(r"kmemleak: .*suspected memory leak|unreferenced object 0x")),
    ("refcount", re.compile(r"\brefcount_t: ")),
    ("gpf", re.compile(r"general protection fault")),
    ("panic", re.compile(r"Kernel panic - not syncing")),
    ("oops", re.compile(r"\bOops\b")),
    ("warning", re.compile(r"\bWARNING: ")),
    ("bug", re.compile(r"\bBUG: ")),
    ("hung-task", re.compile(r"INFO: task .* blocked for more than")),
    ("rcu-stall", re.compile(r"rcu: INFO: .* detected stalls")),
    ("taint", re.compile(r"[Dd]isabling lock debugging due to kernel taint")),
]
_TAINTED = re.compile(r"\bTainted: ([A-Z ]+?)(?:\s+\d|\s*$)")
_BENIGN_TAINTS = set("GOEN ")
# Lines the test command printed as KTAP (results, "# diagnostics"): a test that quotes
# dmesg in its diagnostics must not make the same splat a second finding. Kernel lines
# carry a printk timestamp, so they never match.
_COMMAND_KTAP = re.compile(r"^\s*(?:#|(?:not )?ok \d+)")
# Kinds that are the header of a report already found just above (same excerpt): a
# "BUG: kernel NULL pointer dereference" is followed by its "Oops: 0002 [#1]" line.
_FOLLOW_UPS = {"taint": None, "oops": {"bug", "gpf", "kasan", "kfence"}}
# The excerpt starts at the finding's own line (it becomes the failure message) and
# takes enough of what follows for the register dump and most of the call trace.
EXCERPT_BEFORE, EXCERPT_AFTER = 0, 40


def _classify(text: str) -> str | None:
    for kind, pattern in _FINDING_PATTERNS:
        if pattern.search(text):
            return kind
    m = _TAINTED.search(text)
    if m and set(m.group(1)) - _BENIGN_TAINTS:
        return "taint"
    return None


def scan_console(console: str) -> list[Finding]:
    """Kernel splats (BUG, WARNING, Oops, KASAN, panic, unexpected taint, ...) with excerpts.

    Each excerpt starts at the finding's line. A finding inside the excerpt of an earlier
    one is dropped when it is a header of that same report: any "taint" (the Tainted:
    line), an "oops" after a bug/gpf/kasan/kfence. The command's own KTAP lines are not
    scanned.
    """
    lines = console.splitlines()
    findings: list[Finding] = []
    covered_until, covering = -1, ""
    for i, line in enumerate(lines):
        if _COMMAND_KTAP.match(line):
            continue
        kind = _classify(line)
        if kind is None:
            continue
        if i <= covered_until and kind in _FOLLOW_UPS:
            parents = _FOLLOW_UPS[kind]
            if parents is None or covering in parents:
                continue
        excerpt = "\n".join(lines[max(0, i - EXCERPT_BEFORE) : i + EXCERPT_AFTER])
        findings.append(Finding(kind, i + 1, excerpt))
        covered_until, covering = i + EXCERPT_AFTER - 1, kind
    return findings
