"""Benchmark results: `# bench:` lines -> metrics, bench.json, JUnit, and the noise-aware
comparison with a baseline (pure: no files; the runner and the report do the I/O).

A bench line (docs/BENCH-JOBS.md), anywhere in a job's output, indented or not:

    # bench: <metric>=<value> unit=<unit> [better=lower|higher] [reps=<R>] [spread=<value>]

A metric regressed when its change in the worse direction exceeds both the threshold (a
percentage of the baseline value) and the spread, the larger of the baseline's and the new
run's (a change smaller than how much either run varied over its repetitions is noise).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any

BENCH_LINE = re.compile(r"^\s*#\s*bench:(?P<body>.*)$")
NAME = re.compile(r"^[a-z0-9_]+$")
# A VM's serial console: a printk can land right after a line the command printed, before
# its line end ("... spread=1.313[    1.889020] tsc: Refined TSC ..."); it is not the line's.
GLUED_PRINTK = re.compile(r"\[\s*\d+\.\d{6}\] .*$")
NUMBER = re.compile(r"^[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?$")
FORMAT = ("`# bench: <metric>=<value> unit=<unit> [better=lower|higher] [reps=<R>] "
          "[spread=<value>]`")
KEYS = ("unit", "better", "reps", "spread")
DEFAULT_THRESHOLD = 25.0  # percent
REGRESSED, IMPROVED, OK, NEW, NOT_COMPARABLE, NO_BASELINE = (
    "regressed", "improved", "ok", "new", "not comparable", "no baseline")
CASE_PREFIX = "bench."  # JUnit case of a metric: bench.<metric>; of bad lines: bench.lines
LINES_CASE = "bench.lines"


@dataclass(frozen=True)
class Metric:
    """One measured value, as one bench line reported it."""

    name: str
    value: float
    unit: str
    better: str = "lower"
    reps: int | None = None
    spread: float | None = None
    line: int = 0  # 1-based line in the job's output (0: not from a line)


@dataclass(frozen=True)
class BenchProblem:
    """A bench line that could not be read (or a bench job that printed none)."""

    line: int
    text: str
    message: str


@dataclass
class BenchOutput:
    """What one job's output says: its metrics in order, and the lines that were bad."""

    metrics: list[Metric] = field(default_factory=list)
    problems: list[BenchProblem] = field(default_factory=list)


def parse_bench(text: str, source: str = "log.txt") -> BenchOutput:
    """Every bench line of `text`; a bad line is a BenchProblem whose message names
    `source:line`, what was expected and what to do (never an exception)."""
    out = BenchOutput()
    seen: dict[str, int] = {}
    for number, raw in enumerate(text.splitlines(), 1):
        found = BENCH_LINE.match(raw.rstrip("\r"))
        if not found:
            continue
        line = raw.strip()
        try:
            metric = _metric(GLUED_PRINTK.sub("", found.group("body")), number)
        except ValueError as exc:
            out.problems.append(BenchProblem(number, line, (
                f"{source}:{number}: bad bench line {line[:200]!r}: {exc}; expected "
                f"{FORMAT}; fix the line the benchmark prints (docs/BENCH-JOBS.md)")))
            continue
        if metric.name in seen:
            out.problems.append(BenchProblem(number, line, (
                f"{source}:{number}: metric {metric.name!r} reported again (first at line "
                f"{seen[metric.name]}); print each metric once per run")))
            continue
        seen[metric.name] = number
        out.metrics.append(metric)
    if not out.metrics and not out.problems:
        out.problems.append(BenchProblem(0, "", (
            f"{source}: no bench line in the job's output; a bench job prints one line "
            f"per metric, {FORMAT}")))
    return out


def _number(key: str, text: str) -> float:
    if not NUMBER.match(text):
        raise ValueError(f"{key} {text!r} is not a number")
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{key} {text!r} is not a finite number")
    return value


def _metric(body: str, line: int) -> Metric:
    """One line's metric; ValueError says what is wrong with it."""
    words = body.split()
    if not words:
        raise ValueError("nothing after `bench:`")
    name, eq, value = words[0].partition("=")
    if not eq or not NAME.match(name):
        raise ValueError(f"{words[0]!r} is not <metric>=<value> with a metric name of "
                         "lower-case letters, digits and '_'")
    fields: dict[str, str] = {}
    for word in words[1:]:
        key, eq, text = word.partition("=")
        if not eq or key not in KEYS:
            raise ValueError(f"unknown field {word!r} (known: {', '.join(KEYS)})")
        if key in fields:
            raise ValueError(f"{key} given twice")
        if not text:
            raise ValueError(f"{key} is empty")
        fields[key] = text
    if "unit" not in fields:
        raise ValueError("no unit= (e.g. unit=us)")
    better = fields.get("better", "lower")
    if better not in ("lower", "higher"):
        raise ValueError(f"better={better!r} is neither lower nor higher")
    reps = fields.get("reps")
    if reps is not None and not (reps.isdigit() and int(reps) > 0):
        raise ValueError(f"reps {reps!r} is not a positive whole number")
    spread = _number("spread", fields["spread"]) if "spread" in fields else None
    if spread is not None and spread < 0:
        raise ValueError(f"spread {fields['spread']!r} is negative")
    return Metric(name, _number("value", value), fields["unit"], better,
                  int(reps) if reps is not None else None, spread, line)


# --- comparison -------------------------------------------------------------------------

@dataclass(frozen=True)
class Verdict:
    """A metric against its baseline: ratio = value / baseline value, change in percent of
    the baseline (positive: the value grew)."""

    name: str
    verdict: str
    baseline: float | None = None
    baseline_spread: float | None = None
    ratio: float | None = None
    change_pct: float | None = None
    message: str = ""


def num(value: float) -> str:
    """123.0, 180.5, 0.0123: at most 6 significant digits, always with a decimal point."""
    text = f"{value:.6g}"
    return text if any(c in text for c in ".eni") else f"{text}.0"


def noise(metric: Metric, baseline: Metric) -> float:
    """The spread a change must exceed: the larger of both runs' spreads."""
    return max(baseline.spread or 0.0, metric.spread or 0.0)


def regression_message(metric: Metric, baseline: Metric, threshold: float) -> str:
    """`search_p50_us regressed: 123.0 us -> 180.5 us (+46.7 %, threshold 25 % and spread
    8.1 us)`."""
    unit = metric.unit
    change = (f"{(metric.value - baseline.value) / abs(baseline.value) * 100:+.1f} %"
              if baseline.value else "from zero")
    return (f"{metric.name} regressed: {num(baseline.value)} {unit} -> {num(metric.value)} "
            f"{unit} ({change}, threshold {threshold:g} % and spread "
            f"{num(noise(metric, baseline))} {unit})")


def judge(metric: Metric, baseline: Metric | None, threshold: float) -> Verdict:
    """One metric against its baseline value (None: the baseline did not have it)."""
    if baseline is None:
        return Verdict(metric.name, NEW)
    if baseline.unit != metric.unit:
        return Verdict(metric.name, NOT_COMPARABLE, baseline.value, baseline.spread,
                       message=f"unit changed from {baseline.unit} to {metric.unit}")
    old, new = baseline.value, metric.value
    ratio = new / old if old else None
    change = (new - old) / abs(old) * 100 if old else None
    worse = (new - old) if metric.better == "lower" else (old - new)
    beyond = abs(worse) > noise(metric, baseline) and (change is None or abs(change) > threshold)
    verdict = (REGRESSED if worse > 0 else IMPROVED) if beyond else OK
    return Verdict(metric.name, verdict, old, baseline.spread, ratio, change,
                   regression_message(metric, baseline, threshold)
                   if verdict == REGRESSED else "")


def compare_bench(metrics: list[Metric], baseline: list[Metric] | None,
                  threshold: float = DEFAULT_THRESHOLD) -> list[Verdict]:
    """Each metric's verdict, in the current order; without a baseline every verdict is
    NO_BASELINE."""
    if baseline is None:
        return [Verdict(m.name, NO_BASELINE) for m in metrics]
    before = {m.name: m for m in baseline}
    return [judge(m, before.get(m.name), threshold) for m in metrics]


def verdict_line(metric: Metric, verdict: Verdict) -> str:
    """One metric's judgement as a log line: `op_us: 200.0 us, baseline 105.0 us, ratio
    1.905 (+90.5 %): regressed` ("-" where nothing was compared)."""
    unit = "" if verdict.verdict == NOT_COMPARABLE else f" {metric.unit}"
    baseline = "-" if verdict.baseline is None else f"{num(verdict.baseline)}{unit}"
    ratio = "-" if verdict.ratio is None else f"{verdict.ratio:.3f}"
    change = "" if verdict.change_pct is None else f" ({verdict.change_pct:+.1f} %)"
    note = f" ({verdict.message})" if verdict.message and verdict.verdict != REGRESSED else ""
    return (f"{metric.name}: {num(metric.value)} {metric.unit}, baseline {baseline}, "
            f"ratio {ratio}{change}: {verdict.verdict}{note}")


def tally(verdicts: list[Verdict]) -> str:
    """How many metrics got each verdict, in order of first appearance: `2 ok, 1 new`."""
    counts: dict[str, int] = {}
    for v in verdicts:
        counts[v.verdict] = counts.get(v.verdict, 0) + 1
    return ", ".join(f"{n} {word}" for word, n in counts.items()) or "no metrics"


# --- bench.json and JUnit ---------------------------------------------------------------

def metric_json(metric: Metric) -> dict[str, Any]:
    return {"name": metric.name, "value": metric.value, "unit": metric.unit,
            "better": metric.better, "reps": metric.reps, "spread": metric.spread,
            "line": metric.line}


def bench_json(job: str, output: BenchOutput, source: str = "log.txt") -> dict[str, Any]:
    """The body of a job's bench.json (without a comparison: the report adds it)."""
    return {"version": 1, "job": job, "source": source,
            "metrics": [metric_json(m) for m in output.metrics],
            "problems": [{"line": p.line, "text": p.text, "message": p.message}
                         for p in output.problems],
            "comparison": None}


def metrics_from_json(data: Any) -> list[Metric]:
    """The metrics of a bench.json as read back (entries that do not fit are left out: an
    old or damaged file must not break a report)."""
    rows = data.get("metrics") if isinstance(data, dict) else None
    out = []
    for row in rows if isinstance(rows, list) else []:
        try:
            reps, spread = row.get("reps"), row.get("spread")
            out.append(Metric(str(row["name"]), float(row["value"]), str(row["unit"]),
                              "higher" if row.get("better") == "higher" else "lower",
                              int(reps) if reps is not None else None,
                              float(spread) if spread is not None else None,
                              int(row.get("line") or 0)))
        except (AttributeError, KeyError, TypeError, ValueError):
            continue
    return out


def properties(output: BenchOutput) -> list[tuple[str, str]]:
    """JUnit testsuite properties: bench.<metric> = value, and .unit, .better, .reps,
    .spread when given."""
    props = []
    for m in output.metrics:
        props += [(f"bench.{m.name}", num(m.value)), (f"bench.{m.name}.unit", m.unit),
                  (f"bench.{m.name}.better", m.better)]
        if m.reps is not None:
            props.append((f"bench.{m.name}.reps", str(m.reps)))
        if m.spread is not None:
            props.append((f"bench.{m.name}.spread", num(m.spread)))
    return props


def add_to_suite(suite: Any, output: BenchOutput, job: str) -> None:
    """The bench's properties on a junitparser TestSuite, a passing case per metric
    (bench.<metric>: the report fails it when it regressed) and a failing `bench.lines`
    case for bad lines (or none at all)."""
    from junitparser import Failure, TestCase

    for name, value in properties(output):
        suite.add_property(name, value)
    for metric in output.metrics:
        suite.add_testcase(TestCase(f"{CASE_PREFIX}{metric.name}", classname=job))
    if output.problems:
        case = TestCase(LINES_CASE, classname=job)
        failure = Failure(problems_message(output), "bench-line")
        failure.text = "\n".join(p.message for p in output.problems)
        case.result = [failure]
        suite.add_testcase(case)


def problems_message(output: BenchOutput) -> str:
    """The first problem, and how many more there are."""
    first = output.problems[0].message
    more = len(output.problems) - 1
    return first + (f" (and {more} more bad bench line{'s' if more > 1 else ''})"
                    if more else "")
