"""What a finished run leaves and shows: its report files, reports/latest, its summary.

write_run_report() writes summary.json, junit.xml and index.html, then points
reports/latest at the run; show_run() prints the outcome (table or JSON), reprint_run()
does both again for a past run (`pipeline report`).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from pipeline.errors import InputError, ReportError
from pipeline.model.expand import Job
from pipeline.paths import find_matrix
from pipeline.report.regressions import Regressions
from pipeline.results.status import JobResult


def reports_dir(explicit: str | None, matrix: str | None) -> Path:
    """--reports, else reports/ next to matrix.yml, else ./reports."""
    if explicit:
        return Path(explicit)
    try:
        return find_matrix(explicit=matrix).parent / "reports"
    except InputError:
        return Path("reports")


def resolve_run(reports: Path, run: str) -> Path:
    """A run's directory from its id or path (InputError naming the known runs)."""
    candidate = Path(run)
    for path in (candidate, reports / run):
        if path.is_dir() and (path / "summary.json").is_file():
            return path.resolve()
    known = sorted(p.name for p in reports.glob("*") if (p / "summary.json").is_file())
    raise InputError(f"no run {run!r} in {reports}",
                     hint=f"known runs: {', '.join(known[-5:])}" if known
                     else "run `pipeline run` first")


def html_and_regressions(reports: Path, run_dir: Path, matrix_path: Path,
                         baseline: str | None) -> tuple[Regressions | None, Path]:
    """The changes since `baseline` (default: the previous run of the matrix) and the
    run's freshly written index.html."""
    from pipeline.report.html_report import write_html
    from pipeline.report.regressions import compare_runs, regressions_for

    if baseline:
        regressions = compare_runs(run_dir, resolve_run(reports, baseline))
    else:
        regressions = regressions_for(reports, run_dir, matrix_path)
    return regressions, write_html(run_dir, regressions)


def write_run_report(reports: Path, run_dir: Path, run_id: str, matrix_path: Path,
                     jobs: list[Job], results: dict[str, JobResult], started: datetime,
                     baseline: str | None) -> tuple[dict[str, Any], Regressions | None, Path]:
    """Bench jobs against their baselines (pipeline.report.benchmarks: a regression fails
    the job), then summary.json, junit.xml, index.html, then reports/latest (last, so it
    only ever points at a complete report). ReportError names what still stands."""
    from pipeline.report.benchmarks import compare_benches
    from pipeline.report.summary import latest_target, point_latest, write_summary

    try:
        compare_benches(reports, run_dir, matrix_path, jobs, results,
                        resolve_run(reports, baseline) if baseline else None)
        summary = write_summary(run_dir, run_id, matrix_path, jobs, results, started)
        regressions, index = html_and_regressions(reports, run_dir, matrix_path, baseline)
        point_latest(reports, run_dir)
    except ReportError as exc:
        previous = latest_target(reports)
        kept = (f"{reports / 'latest'} still points at the previous report ({previous}), "
                "which is intact" if previous and previous != run_dir.name
                else f"{reports / 'latest'} was not changed")
        raise ReportError(f"{exc.message}; the report of run {run_id} is incomplete",
                          hint=f"{kept}; free space and run again") from None
    return summary, regressions, index


def show_nothing_to_run(say: Callable[[str], None], changed: list[str], since: str,
                        as_json: bool) -> None:
    """`pipeline run --changed-since REV` when no selected job has a changed input."""
    say(f"nothing to run: {len(changed)} file(s) changed since {since}, "
        "none of them an input of the selected jobs")
    if as_json:
        print(json.dumps({"run": None, "status": "passed", "changed": changed,
                          "results": []}, indent=2))


def show_run(summary: dict[str, Any], regressions: Regressions | None, index: Path,
             console: Any, run_dir: Path, as_json: bool) -> None:
    """The end of `pipeline run`: the summary as JSON on stdout, or as a table."""
    from pipeline.report.summary import render_summary

    if as_json:
        print(json.dumps({**summary, "regressions": regressions.to_json() if regressions
                          else None, "html": str(index)}, indent=2))
    else:
        render_summary(summary, console, run_dir, regressions, index)


def reprint_run(reports: Path, run: str, baseline: str | None,
                as_json: bool) -> tuple[dict[str, Any], Path]:
    """Rewrite a past run's index.html and print its summary (JSON: summary.json as is);
    returns the summary and the index.html."""
    from rich.console import Console

    from pipeline.report.summary import render_summary

    run_dir = resolve_run(reports, run)
    summary = json.loads((run_dir / "summary.json").read_text())
    regressions, index = html_and_regressions(reports, run_dir, Path(summary["matrix"]),
                                              baseline)
    if as_json:
        print(json.dumps(summary, indent=2))
    else:
        render_summary(summary, Console(), run_dir, regressions, index)
    return summary, index
