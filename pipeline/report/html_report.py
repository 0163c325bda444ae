"""reports/<run-id>/index.html: the run as a matrix page a person can read.

One self-contained file (inline CSS, no scripts, fonts or remote resources) with relative
links, so it works from the filesystem (file://), from a CI artifact store or any server.
Built from summary.json plus each job's junit.xml (for the failure details).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

from jinja2 import Environment, FileSystemLoader, StrictUndefined
from junitparser import JUnitXml, TestSuite

from pipeline.errors import InputError, ReportError
from pipeline.fsutil import atomic_write_text
from pipeline.report.regressions import Regressions

TEMPLATES = Path(__file__).parent / "templates"
TEMPLATE = "report.html.j2"
INDEX = "index.html"
MAX_DETAIL_LINES = 60
MAX_CELL_FAILURES = 4
# status -> (foreground, background, border); the same palette as the terminal summary
STATUS_COLOURS = {
    "passed": ("#116329", "#dafbe1", "#2da44e"),
    "failed": ("#a40e26", "#ffebe9", "#cf222e"),
    "error": ("#82071e", "#ffd8d3", "#a40e26"),
    "skipped": ("#57606a", "#f0f2f4", "#8c959f"),
    "cancelled": ("#7d4e00", "#fff8c5", "#bf8700"),
    "interrupted": ("#6639ba", "#fbefff", "#8250df"),
    "cached": ("#0550ae", "#ddf4ff", "#218bff"),
}
STATUS_ICON = {
    "passed": "\u2714", "failed": "\u2718", "error": "\u26a0", "skipped": "\u2013",
    "cancelled": "\u2298", "interrupted": "\u23f8", "cached": "\u21bb",
}


@dataclass
class Failing:
    """A failing test of one job, with its message and the JUnit text (first errors/panic)."""

    name: str
    short: str
    kind: str
    message: str
    first_line: str
    detail: str
    anchor: str


@dataclass
class Link:
    label: str
    href: str
    exists: bool


@dataclass
class Cell:
    """One job of the run."""

    id: str
    name: str
    axes: dict[str, str]
    status: str
    duration: str
    message: str
    tests: int
    passed: int
    failed: int
    skipped: int
    failing: list[Failing]
    links: list[Link]
    anchor: str

    @property
    def ran(self) -> bool:
        """False for jobs that never started (cancelled before running, no directory)."""
        return bool(self.links) or self.status not in ("cancelled", "skipped")

    @property
    def more_failing(self) -> int:
        return max(0, len(self.failing) - MAX_CELL_FAILURES)


@dataclass
class Grid:
    """A table: one row per axis value (kernel or feature set), one column per job kind."""

    title: str
    axis: str
    columns: list[str]
    rows: list[tuple[str, list[Cell | None]]] = field(default_factory=list)


def duration(seconds: float | None) -> str:
    """4.2 s, 3 m 05 s, 1 h 02 m."""
    if seconds is None:
        return "-"
    if seconds < 60:
        return f"{seconds:.1f} s"
    whole = round(seconds)
    if whole < 3600:
        return f"{whole // 60} m {whole % 60:02d} s"
    return f"{whole // 3600} h {whole % 3600 // 60:02d} m"


def _version_key(version: str) -> tuple[Any, ...]:
    return tuple((0, int(p)) if p.isdigit() else (1, p) for p in re.split(r"[.\-+]", version))


def _anchor(*parts: str) -> str:
    return "x-" + re.sub(r"[^A-Za-z0-9_-]+", "-", "-".join(parts)).strip("-")


def _href(*parts: str) -> str:
    return "/".join(quote(p) for p in "/".join(parts).split("/") if p)


def _clip(text: str, lines: int = MAX_DETAIL_LINES) -> str:
    rows = text.strip("\n").splitlines()
    if len(rows) > lines:
        rows = [*rows[:lines], f"... {len(rows) - lines} more lines in junit.xml"]
    return "\n".join(rows)


def _details(run_dir: Path, directory: str | None) -> dict[str, str]:
    """Failure texts of a job's junit.xml by test name (classname.name)."""
    if not directory:
        return {}
    path = run_dir / directory / "junit.xml"
    if not path.is_file():
        return {}
    texts: dict[str, str] = {}
    try:
        xml = JUnitXml.fromfile(str(path))
        for suite in [xml] if isinstance(xml, TestSuite) else list(xml):
            for case in suite:
                name = f"{case.classname}.{case.name}" if case.classname else case.name
                for result in case.result:
                    if type(result).__name__ in ("Failure", "Error") and result.text:
                        texts[name] = _clip(result.text)
    except Exception:  # a broken junit.xml must not break the report
        return {}
    return texts


def _cell(run_dir: Path, row: dict[str, Any]) -> Cell:
    job_id = str(row.get("id", "?"))
    directory = row.get("directory")
    details = _details(run_dir, directory)
    failing = []
    for fail in row.get("failing") or []:
        name = str(fail.get("name", ""))
        short = name[len(job_id) + 1:] if name.startswith(f"{job_id}.") else name
        message = str(fail.get("message") or "")
        detail = details.get(name, "")
        if detail.strip() == message.strip():
            detail = ""
        failing.append(Failing(
            name=name, short=short or name, kind=str(fail.get("kind", "failure")),
            message=message, first_line=(message.strip().splitlines() or [""])[0],
            detail=detail, anchor=_anchor("fail", job_id, short)))
    links = []
    if directory:
        for label, target in (("log", "log.txt"), ("junit", "junit.xml"),
                              ("reproduce", "reproduce.sh"), ("metadata", "metadata.json"),
                              ("artifacts", "artifacts/")):
            exists = (run_dir / directory / target.rstrip("/")).exists()
            links.append(Link(label, _href(directory, target) + ("/" if target.endswith("/")
                                                                 else ""), exists))
    tests = int(row.get("tests") or 0)
    failed = int(row.get("failures") or 0) + int(row.get("errors") or 0)
    skipped = int(row.get("skipped") or 0)
    return Cell(
        id=job_id, name=str(row.get("name") or job_id.split("/")[0]),
        axes={str(k): str(v) for k, v in (row.get("axes") or {}).items()},
        status=str(row.get("status", "error")), duration=duration(row.get("seconds")),
        message=str(row.get("message") or ""), tests=tests,
        passed=max(0, tests - failed - skipped), failed=failed, skipped=skipped,
        failing=failing, links=links, anchor=_anchor("job", job_id),
    )


def build_view(run_dir: Path, summary: dict[str, Any],
               regressions: Regressions | None = None) -> dict[str, Any]:
    """Everything the template shows (pure apart from reading the jobs' junit files)."""
    cells = [_cell(run_dir, row) for row in summary.get("results") or []]

    kernel_cells = [c for c in cells if "kernel" in c.axes]
    feature_cells = [c for c in cells if "kernel" not in c.axes and "features" in c.axes]
    other_cells = [c for c in cells if "kernel" not in c.axes and "features" not in c.axes]

    def column(c: Cell) -> str:
        extra = [v for k, v in sorted(c.axes.items()) if k != "kernel"]
        return " \u00b7 ".join([c.name, *extra]) if "kernel" in c.axes else c.name

    grids = []
    for title, axis, group, row_of, order in (
        ("Kernels", "kernel", kernel_cells, lambda c: c.axes["kernel"], _version_key),
        ("Feature sets", "features", feature_cells, lambda c: c.axes["features"], None),
    ):
        if not group:
            continue
        columns = list(dict.fromkeys(column(c) for c in group))
        values = list(dict.fromkeys(row_of(c) for c in group))
        if order:
            values.sort(key=order)
        grid = Grid(title, axis, columns)
        for value in values:
            by_column = {column(c): c for c in group if row_of(c) == value}
            grid.rows.append((value, [by_column.get(col) for col in columns]))
        grids.append(grid)

    tests = summary.get("tests") or {}
    total = int(tests.get("total") or 0)
    failed = int(tests.get("failures") or 0) + int(tests.get("errors") or 0)
    skipped = int(tests.get("skipped") or 0)
    passed = max(0, total - failed - skipped)
    status = str(summary.get("status", "failed"))
    if any(c.status == "interrupted" for c in cells):
        status = "interrupted"
    started, finished = _time(summary.get("started")), _time(summary.get("finished"))
    wall = (finished - started).total_seconds() if started and finished else None
    job_counts = [(s, n) for s, n in (summary.get("jobs") or {}).items() if n]
    baseline_link = None
    if regressions and regressions.baseline_run:
        index = run_dir.parent / regressions.baseline_run / INDEX
        baseline_link = _href("..", regressions.baseline_run, INDEX) if index.is_file() else None
    return {
        "run": summary.get("run", run_dir.name),
        "matrix": summary.get("matrix", ""),
        "status": status,
        "started": _show_time(started, summary.get("started")),
        "finished": _show_time(finished, summary.get("finished")),
        "duration": duration(wall),
        "cpu_time": duration(sum(float(r.get("seconds") or 0)
                                 for r in summary.get("results") or [])),
        "jobs_total": len(cells),
        "job_counts": job_counts,
        "tests": {"total": total, "passed": passed, "failed": failed, "skipped": skipped},
        "bar": _bar(passed, failed, skipped),
        "grids": grids,
        "others": other_cells,
        "failing_cells": [c for c in cells if c.failing or c.status in ("failed", "error")],
        "regressions": regressions,
        "baseline_link": baseline_link,
        "colours": STATUS_COLOURS,
        "icons": STATUS_ICON,
        "max_cell_failures": MAX_CELL_FAILURES,
        "favicon": _favicon(STATUS_COLOURS.get(status, STATUS_COLOURS["failed"])[2]),
        "extra": {k: v for k, v in summary.items() if k not in _KNOWN and
                  isinstance(v, (str, int, float))},
    }


_KNOWN = {"run", "matrix", "started", "finished", "status", "jobs", "tests", "results"}


def _bar(passed: int, failed: int, skipped: int) -> list[tuple[str, float, int]]:
    total = passed + failed + skipped
    if not total:
        return []
    return [(s, round(100 * n / total, 3), n)
            for s, n in (("passed", passed), ("failed", failed), ("skipped", skipped)) if n]


def _time(value: Any) -> datetime | None:
    try:
        return datetime.fromisoformat(str(value))
    except (TypeError, ValueError):
        return None


def _show_time(parsed: datetime | None, raw: Any) -> str:
    if parsed is None:
        return str(raw or "-")
    zone = " UTC" if parsed.utcoffset() is not None and not parsed.utcoffset() else ""
    return parsed.strftime("%Y-%m-%d %H:%M:%S") + zone


def _favicon(colour: str) -> str:
    svg = (f"<svg xmlns='http://www.w3.org/2000/svg' viewBox='0 0 16 16'>"
           f"<circle cx='8' cy='8' r='7' fill='{colour}'/></svg>")
    return "data:image/svg+xml," + quote(svg)


def render(run_dir: Path, summary: dict[str, Any],
           regressions: Regressions | None = None) -> str:
    """The HTML text of the report."""
    env = Environment(loader=FileSystemLoader(str(TEMPLATES)), autoescape=True,
                      undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True,
                      keep_trailing_newline=True)
    return env.get_template(TEMPLATE).render(**build_view(run_dir, summary, regressions))


def write_html(run_dir: Path, regressions: Regressions | None = None) -> Path:
    """Render run_dir/summary.json (and the jobs' junit.xml) to run_dir/index.html."""
    run_dir = Path(run_dir)
    try:
        summary = json.loads((run_dir / "summary.json").read_text(encoding="utf-8"))
    except OSError as exc:
        raise InputError(f"{run_dir}: no summary.json ({exc.strerror})",
                         hint="pass a run directory such as reports/latest") from None
    except ValueError as exc:
        raise InputError(f"{run_dir / 'summary.json'}: not valid JSON: {exc}") from None
    out = run_dir / INDEX
    try:
        atomic_write_text(out, render(run_dir, summary, regressions))
    except OSError as exc:
        raise ReportError(f"cannot write {out}: {exc.strerror or exc}") from None
    return out
