"""reports/<run-id>/index.html: the run as a matrix page a person can read.

One self-contained file (inline CSS, no scripts, fonts or remote resources) with relative
links, so it works from the filesystem (file://), from a CI artifact store or any server.
Built from summary.json plus each job's junit.xml (for the failure details) and a bench
job's bench.json (its table: bench_view.py); the matrix tables are view.py's, the same the
Buildbot dashboard draws.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

from junitparser import JUnitXml, TestSuite

from pipeline.errors import InputError, ReportError
from pipeline.fsutil import atomic_write_text
from pipeline.report import view
from pipeline.report.bench_view import bench_anchor, bench_line, bench_tables
from pipeline.report.benchmarks import BENCH_FILE, read_json
from pipeline.report.regressions import Regressions
from pipeline.report.view import Cell, Failing, Link, anchor, duration, href
from pipeline.report.view import version_key as _version_key
from pipeline.results.status import ERROR, FAILED, INTERRUPTED

__all__ = ["_version_key", "build_view", "duration", "render", "write_html"]

TEMPLATE = "report.html.j2"
INDEX = "index.html"
MAX_DETAIL_LINES = 60
FAILING_STATUSES = (FAILED, ERROR)
JOB_FILES = (("log", "log.txt"), ("junit", "junit.xml"), ("reproduce", "reproduce.sh"),
             ("metadata", "metadata.json"), ("artifacts", "artifacts/"))


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


def failing_cases(junit: Path, job_id: str, limit: int = 50) -> list[Failing]:
    """The failing cases of a junit.xml, with their messages and texts (none when the file
    is missing or broken: a page must still render)."""
    failing: list[Failing] = []
    try:
        xml = JUnitXml.fromfile(str(junit))
        for suite in [xml] if isinstance(xml, TestSuite) else list(xml):
            for case in suite:
                problems = [r for r in case.result
                            if type(r).__name__ in ("Failure", "Error")]
                if not problems or len(failing) >= limit:
                    continue
                name = f"{case.classname}.{case.name}" if case.classname else case.name
                short = name[len(job_id) + 1:] if name.startswith(f"{job_id}.") else name
                message = str(problems[0].message or "")
                detail = _clip(problems[0].text or "")
                failing.append(Failing(
                    name=name, short=short or name, kind=type(problems[0]).__name__.lower(),
                    message=message, first_line=(message.strip().splitlines() or [""])[0],
                    detail="" if detail.strip() == message.strip() else detail,
                    anchor=anchor("fail", job_id, short)))
    except Exception:  # a broken junit.xml must not break the page
        return []
    return failing


def _failing(run_dir: Path, job_id: str, row: dict[str, Any]) -> list[Failing]:
    """The job's failing tests from summary.json, with their junit.xml texts."""
    details = _details(run_dir, row.get("directory")) if row.get("failing") else {}
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
            detail=detail, anchor=anchor("fail", job_id, short)))
    return failing


def _links(run_dir: Path, directory: str | None) -> list[Link]:
    """The job's files, relative to index.html; missing ones are marked, not linked."""
    if not directory:
        return []
    return [Link(label, href(directory, target) + ("/" if target.endswith("/") else ""),
                 (run_dir / directory / target.rstrip("/")).exists())
            for label, target in JOB_FILES]


def _cell(run_dir: Path, row: dict[str, Any]) -> Cell:
    job_id = str(row.get("id", "?"))
    tests = int(row.get("tests") or 0)
    failed = int(row.get("failures") or 0) + int(row.get("errors") or 0)
    skipped = int(row.get("skipped") or 0)
    cell = Cell(
        id=job_id, name=str(row.get("name") or job_id.split("/")[0]),
        axes={str(k): str(v) for k, v in (row.get("axes") or {}).items()},
        status=str(row.get("status", "error")), duration=duration(row.get("seconds")),
        message=str(row.get("message") or ""), tests=tests,
        passed=max(0, tests - failed - skipped), failed=failed, skipped=skipped,
        failing=_failing(run_dir, job_id, row), links=_links(run_dir, row.get("directory")),
    )
    bench = read_json(run_dir / str(row["directory"]) / BENCH_FILE) \
        if row.get("directory") else None
    if bench is not None:  # a bench job: its summary line, and a link to its table
        cell.bench = bench_line(bench)
        cell.links.append(Link("bench", f"#{bench_anchor(job_id)}"))
    return cell


def _header(run_dir: Path, summary: dict[str, Any], cells: list[Cell]) -> dict[str, Any]:
    """The banner: run status, times, job and test counts."""
    tests = summary.get("tests") or {}
    total = int(tests.get("total") or 0)
    failed = int(tests.get("failures") or 0) + int(tests.get("errors") or 0)
    skipped = int(tests.get("skipped") or 0)
    passed = max(0, total - failed - skipped)
    status = str(summary.get("status", "failed"))
    if any(c.status == INTERRUPTED for c in cells):
        status = INTERRUPTED
    started, finished = _time(summary.get("started")), _time(summary.get("finished"))
    wall = (finished - started).total_seconds() if started and finished else None
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
        "job_counts": [(s, n) for s, n in (summary.get("jobs") or {}).items() if n],
        "tests": {"total": total, "passed": passed, "failed": failed, "skipped": skipped},
        "bar": _bar(passed, failed, skipped),
        "favicon": view.favicon(status),
    }


def build_view(run_dir: Path, summary: dict[str, Any],
               regressions: Regressions | None = None) -> dict[str, Any]:
    """Everything the template shows (pure apart from reading the jobs' junit files)."""
    cells = [_cell(run_dir, row) for row in summary.get("results") or []]
    baseline_link = None
    if regressions and regressions.baseline_run:
        index = run_dir.parent / regressions.baseline_run / INDEX
        baseline_link = href("..", regressions.baseline_run, INDEX) if index.is_file() else None
    return {
        **_header(run_dir, summary, cells),
        "table": view.matrix(cells),
        "failing_cells": [c for c in cells if c.failing or c.status in FAILING_STATUSES],
        "regressions": regressions,
        "baseline_link": baseline_link,
        "benches": bench_tables(run_dir, summary),
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


def render(run_dir: Path, summary: dict[str, Any],
           regressions: Regressions | None = None) -> str:
    """The HTML text of the report."""
    return view.render(TEMPLATE, **build_view(run_dir, summary, regressions))


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
