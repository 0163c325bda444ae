"""What the pages show of bench jobs, from their bench.json: the run report's table per
job (metric, value, unit, spread, baseline, ratio, verdict) and the one line a matrix cell
shows (the report's and the Buildbot dashboard's, drawn by templates/matrix.html.j2)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipeline.report.benchmarks import BENCH_FILE, read_json
from pipeline.report.view import anchor, href
from pipeline.results.bench import NO_BASELINE, REGRESSED, metrics_from_json, num


@dataclass
class BenchRow:
    """One metric of a bench table, formatted."""

    name: str
    value: str
    unit: str
    better: str
    spread: str
    reps: str
    baseline: str
    ratio: str
    change: str
    verdict: str
    message: str = ""


@dataclass
class BenchTable:
    """A bench job's metrics against its baseline."""

    job: str
    status: str
    rows: list[BenchRow]
    baseline_run: str | None = None
    baseline_href: str | None = None  # the baseline run's index.html, when it has one
    threshold: str = ""
    file: str = ""  # bench.json, relative to index.html
    problems: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)

    @property
    def anchor(self) -> str:
        return bench_anchor(self.job)

    @property
    def cell_anchor(self) -> str:
        return anchor("job", self.job)

    @property
    def regressed(self) -> int:
        return sum(1 for r in self.rows if r.verdict == REGRESSED)


def bench_anchor(job_id: str) -> str:
    return anchor("bench", job_id)


def _judged(data: dict[str, Any]) -> dict[str, dict[str, Any]]:
    comparison = data.get("comparison")
    judged = comparison.get("metrics") if isinstance(comparison, dict) else None
    if not isinstance(judged, dict):
        return {}
    return {str(k): v for k, v in judged.items() if isinstance(v, dict)}


def _opt(value: Any, text: Any = num) -> str:
    """A value as text, "-" when there is none (or a damaged file has something else)."""
    try:
        return "-" if value is None else str(text(value))
    except (TypeError, ValueError):
        return "-"


def bench_rows(data: dict[str, Any]) -> list[BenchRow]:
    """The metrics of a bench.json with their verdicts ("not compared" without any)."""
    judged = _judged(data)
    rows = []
    for m in metrics_from_json(data):
        v = judged.get(m.name) or {}
        rows.append(BenchRow(
            name=m.name, value=num(m.value), unit=m.unit, better=m.better,
            spread=_opt(m.spread), reps=_opt(m.reps, str), baseline=_opt(v.get("baseline")),
            ratio=_opt(v.get("ratio"), lambda r: f"{r:.3f}"),
            change=_opt(v.get("change_pct"), lambda c: f"{c:+.1f} %"),
            verdict=str(v.get("verdict") or "not compared"), message=str(v.get("message") or "")))
    return rows


def bench_table(run_dir: Path, row: dict[str, Any]) -> BenchTable | None:
    """The table of one summary.json row's job (None: it left no bench.json)."""
    directory = row.get("directory")
    data = read_json(run_dir / str(directory) / BENCH_FILE) if directory else None
    if data is None:
        return None
    comparison = data.get("comparison") if isinstance(data.get("comparison"), dict) else {}
    base = comparison.get("baseline_run")
    index = run_dir.parent / str(base) / "index.html" if base else None
    problems = [str(p.get("message")) for p in _list(data.get("problems"))
                if isinstance(p, dict)]
    threshold = comparison.get("threshold_pct")
    return BenchTable(
        job=str(row.get("id")), status=str(row.get("status", "error")), rows=bench_rows(data),
        baseline_run=str(base) if base else None,
        baseline_href=href("..", str(base), "index.html") if index and index.is_file() else None,
        threshold=f"{threshold:g} %" if isinstance(threshold, int | float) else "",
        file=href(str(directory), BENCH_FILE), problems=problems,
        missing=[str(n) for n in _list(comparison.get("missing"))])


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def bench_tables(run_dir: Path, summary: dict[str, Any]) -> list[BenchTable]:
    """The bench table of every job of the run that left a bench.json."""
    tables = (bench_table(run_dir, row) for row in summary.get("results") or [])
    return [t for t in tables if t is not None]


def _worse(ratio: float, better: str) -> float:
    """How much worse a ratio is: > 1 worse, < 1 better, whichever way is better."""
    return ratio if better == "lower" else (1 / ratio if ratio else float("inf"))


def bench_line(data: dict[str, Any] | None) -> str:
    """A cell's bench summary: `bench: 9 metrics, worst 1.08x search_p99_us`, the
    regressions when there are any, or the first metric when nothing was compared."""
    if data is None:
        return ""
    metrics = metrics_from_json(data)
    if not metrics:
        return "bench: no metrics"
    judged = _judged(data)
    regressed = [m.name for m in metrics if (judged.get(m.name) or {}).get("verdict")
                 == REGRESSED]
    if regressed:
        return f"bench: {len(regressed)} of {len(metrics)} regressed ({', '.join(regressed)})"
    ratios = [(_worse(r, m.better), r, m.name) for m in metrics
              if isinstance(r := (judged.get(m.name) or {}).get("ratio"), int | float)]
    if ratios:
        _, ratio, name = max(ratios)
        return f"bench: {_count(metrics)}, worst {ratio:.2f}x {name}"
    if any((judged.get(m.name) or {}).get("verdict") == NO_BASELINE for m in metrics):
        return f"bench: {_count(metrics)}, no baseline"
    first = metrics[0]
    return f"bench: {_count(metrics)}, {first.name} {num(first.value)} {first.unit}"


def _count(metrics: list[Any]) -> str:
    return f"{len(metrics)} metric{'' if len(metrics) == 1 else 's'}"
