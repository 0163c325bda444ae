"""Run-level outputs: reports/<run-id>/{summary.json, junit.xml}, reports/latest, summary."""

from __future__ import annotations

import contextlib
import json
import os
import secrets
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from junitparser import JUnitXml

from pipeline.errors import ReportError
from pipeline.fsutil import atomic_write_text
from pipeline.model.expand import Job
from pipeline.results.merge import merge_files, placeholder_suite
from pipeline.results.status import OK_STATUSES, STATUS_STYLE, JobResult


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


def new_run_dir(reports: Path, attempts: int = 50) -> tuple[str, Path]:
    """A fresh run id and its directory, created exclusively: runs started at the same time
    in one checkout (same second, same random suffix) still get distinct directories."""
    try:
        reports.mkdir(parents=True, exist_ok=True)
        for _ in range(attempts):
            run_id = new_run_id()
            try:
                return run_id, create_run_dir(reports, run_id)
            except FileExistsError:
                continue
    except OSError as exc:
        raise ReportError(f"cannot create a run directory in {reports}: "
                          f"{exc.strerror or exc}",
                          hint="check --reports (an existing, writable directory)") from None
    raise ReportError(f"cannot create a run directory in {reports}: {attempts} run ids taken")


def latest_target(reports: Path) -> str | None:
    """The run reports/latest points at (None if there is none)."""
    try:
        return os.readlink(reports / "latest")
    except OSError:
        return None


def point_latest(reports: Path, run_dir: Path) -> None:
    """Atomically repoint reports/latest at run_dir (ReportError if that fails; the old
    link is then unchanged)."""
    tmp = reports / f".latest-{os.getpid()}"
    try:
        if tmp.is_symlink() or tmp.exists():
            tmp.unlink()
        tmp.symlink_to(run_dir.name)
        tmp.replace(reports / "latest")
    except OSError as exc:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise ReportError(f"cannot point {reports / 'latest'} at {run_dir.name}: "
                          f"{exc.strerror or exc}") from None


def write_summary(run_dir: Path, run_id: str, matrix_path: Path, jobs: list[Job],
                  results: dict[str, JobResult], started: datetime,
                  extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """summary.json and the merged junit.xml (each written atomically); returns the
    summary. ReportError when a file cannot be written (e.g. the disk is full)."""
    def junit(result: JobResult) -> Path | None:
        path = run_dir / result.directory / "junit.xml" if result.directory else None
        return path if path is not None and path.exists() else None

    junit_files = [p for p in map(junit, results.values()) if p is not None]
    not_run = [placeholder_suite(r.id, r.status, r.message) for r in results.values()
               if junit(r) is None and not r.ok]
    try:
        merged: JUnitXml = merge_files(junit_files, run_dir / "junit.xml", name=run_id,
                                       extra=not_run)
    except OSError as exc:
        raise ReportError(f"cannot write {run_dir / 'junit.xml'}: {exc.strerror or exc}"
                          ) from None
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
    try:
        atomic_write_text(run_dir / "summary.json", json.dumps(summary, indent=2) + "\n")
    except OSError as exc:
        raise ReportError(f"cannot write {run_dir / 'summary.json'}: {exc.strerror or exc}"
                          ) from None
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
