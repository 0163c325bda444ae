"""Run-level outputs: reports/<run-id>/{summary.json, junit.xml}, reports/latest, summary."""

from __future__ import annotations

import json
import os
import secrets
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from junitparser import JUnitXml

from pipeline.expand import Job
from pipeline.results.merge import merge_files
from pipeline.runner import OK_STATUSES, JobResult

STATUS_STYLE = {
    "passed": "green", "failed": "red", "error": "red", "skipped": "yellow",
    "cancelled": "yellow", "interrupted": "magenta", "cached": "cyan",
}


def new_run_id(now: datetime | None = None) -> str:
    """A sortable, unique run id: 20261127-154601-3fa2."""
    now = now or datetime.now(UTC)
    return f"{now:%Y%m%d-%H%M%S}-{secrets.token_hex(2)}"


def create_run_dir(reports: Path, run_id: str) -> Path:
    """reports/<run-id>/, created exclusively (two runs never share one)."""
    reports.mkdir(parents=True, exist_ok=True)
    path = reports / run_id
    path.mkdir()
    return path


def point_latest(reports: Path, run_dir: Path) -> None:
    """Atomically repoint reports/latest at run_dir."""
    tmp = reports / f".latest-{os.getpid()}"
    if tmp.is_symlink() or tmp.exists():
        tmp.unlink()
    tmp.symlink_to(run_dir.name)
    tmp.replace(reports / "latest")


def write_summary(run_dir: Path, run_id: str, matrix_path: Path, jobs: list[Job],
                  results: dict[str, JobResult], started: datetime,
                  extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """summary.json and the merged junit.xml; returns the summary."""
    junit_files = [run_dir / r.directory / "junit.xml" for r in results.values()
                   if r.directory and (run_dir / r.directory / "junit.xml").exists()]
    merged: JUnitXml = merge_files(junit_files, run_dir / "junit.xml", name=run_id)
    counts = {s: sum(1 for r in results.values() if r.status == s) for s in STATUS_STYLE}
    summary = {
        "run": run_id,
        "matrix": str(matrix_path),
        "started": started.isoformat(timespec="seconds"),
        "finished": datetime.now(UTC).isoformat(timespec="seconds"),
        "status": "passed" if all(r.status in OK_STATUSES for r in results.values())
        else "failed",
        "jobs": {s: n for s, n in counts.items() if n},
        "tests": {"total": merged.tests, "failures": merged.failures,
                  "errors": merged.errors, "skipped": merged.skipped},
        "results": [
            {**results[j.id].to_json(), "name": j.name, "axes": j.axes()}
            for j in jobs if j.id in results
        ],
        **(extra or {}),
    }
    tmp = run_dir / "summary.json.tmp"
    tmp.write_text(json.dumps(summary, indent=2) + "\n")
    tmp.replace(run_dir / "summary.json")
    return summary


def render_summary(summary: dict[str, Any], console: Any, run_dir: Path,
                   regressions: Any = None, index: Path | None = None) -> None:
    """Print the end-of-run table, the failing tests and the changes since the baseline."""
    from rich.table import Table

    table = Table(title=f"run {summary['run']}", show_lines=False)
    for col in ("job", "status", "time", "tests", "message"):
        table.add_column(col, overflow="fold")
    for row in summary["results"]:
        style = STATUS_STYLE.get(row["status"], "")
        tests = f"{row['tests'] - row['failures'] - row['errors']}/{row['tests']}" \
            if row["tests"] else "-"
        table.add_row(row["id"], f"[{style}]{row['status'].upper()}[/]",
                      f"{row['seconds']:.1f}s", tests, row["message"])
    console.print(table)
    failing = [(row["id"], f) for row in summary["results"] for f in row["failing"]]
    for job_id, fail in failing[:20]:
        console.print(f"[red]FAIL[/] {fail['name']} ({job_id}): {fail['message']}",
                      highlight=False, markup=True)
    if len(failing) > 20:
        console.print(f"... and {len(failing) - 20} more failing tests (see junit.xml)")
    if regressions is not None:
        base = regressions.baseline_run or "the previous run"
        for title, items, style in (("newly failing", regressions.newly_failing, "red"),
                                    ("fixed", regressions.fixed, "green"),
                                    ("still failing", regressions.still_failing, "yellow")):
            if items:
                console.print(f"[{style}]{len(items)} {title}[/] since {base}:")
                for change in items[:10]:
                    console.print(f"  {change.job}: {change.name}", highlight=False)
        if not (regressions.newly_failing or regressions.fixed or regressions.still_failing):
            console.print(f"no test changed status since {base}", highlight=False)
    tests = summary["tests"]
    console.print(
        f"{tests['total'] - tests['failures'] - tests['errors'] - tests['skipped']} passed, "
        f"{tests['failures'] + tests['errors']} failed, {tests['skipped']} skipped tests; "
        f"jobs: " + ", ".join(f"{n} {s}" for s, n in summary["jobs"].items())
        + f"\nreport: {index or run_dir}", highlight=False)
