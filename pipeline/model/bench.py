"""A job's `bench:` section: its output's `# bench:` lines are benchmark metrics, compared
with the job's previous passing run (docs/BENCH-JOBS.md).

    bench: {threshold: 25%}   # a metric regressed when it got worse by more than this
                              # percentage AND by more than the two runs' larger spread
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pipeline.errors import Diagnostic
from pipeline.model.yamlmarks import key_mark_of, mark_of

DEFAULT_THRESHOLD = 25.0
THRESHOLD_PATTERN = r"^[0-9]+(\.[0-9]+)?\s?%$"
BENCH = {
    "type": "object",
    "description": "Benchmark metrics: the `# bench:` lines of the job's output become "
                   "bench.json, compared with its previous passing run (docs/BENCH-JOBS.md).",
    "properties": {
        "threshold": {"type": ["string", "number"], "pattern": THRESHOLD_PATTERN,
                      "default": "25%",
                      "description": "a percentage with its sign, such as 25% (a bare "
                                     "number is an error): a metric regressed when it got "
                                     "worse by more than this and by more than the larger "
                                     "spread of the two runs"},
    },
    "additionalProperties": False,
}


@dataclass(frozen=True)
class BenchSpec:
    """A bench job's settings: the regression threshold, in percent of the baseline."""

    threshold: float = DEFAULT_THRESHOLD


def bench_spec(name: str, job: dict[str, Any], diags: list[Diagnostic]) -> BenchSpec | None:
    """The job's BenchSpec (None without `bench:`); a threshold of 0 % is an error at its
    line (the schema has checked the form)."""
    if "bench" not in job:
        return None
    raw = job["bench"] or {}
    given = raw.get("threshold", f"{DEFAULT_THRESHOLD:g}%")
    where = mark_of(raw, "threshold") or key_mark_of(job, "bench")
    if not isinstance(given, str):  # a number: 25 or 0.25 would both be guesses
        diags.append(Diagnostic(f"jobs.{name}.bench.threshold: {given} is not a percentage",
                                where, f"write it with a percent sign, e.g. {given:g}%"
                                + (f" (or {given * 100:g}% if {given:g} is a fraction)"
                                   if 0 < given < 1 else "")))
        return BenchSpec()
    value = float(given.rstrip("% "))
    if value <= 0:
        diags.append(Diagnostic(
            f"jobs.{name}.bench.threshold: {given!r} would call any change beyond the "
            "spread a regression", where, "expected a percentage above 0%, e.g. 25%"))
    return BenchSpec(threshold=value)
