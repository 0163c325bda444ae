"""What the inspection commands print: the expanded jobs, the result cache, past runs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pipeline.model.expand import Job


def print_jobs(jobs: list[Job], chosen: set[str], as_json: bool) -> None:
    """`pipeline list`: one line per job (or JSON); jobs not in `chosen` are needs."""
    rows = [{"id": j.id, "name": j.name, "axes": j.axes(), "image": j.spec.image,
             "needs": list(j.needs), "inputs": list(j.spec.inputs), "timeout": j.timeout,
             "selected": j.id in chosen} for j in jobs]
    if as_json:
        print(json.dumps(rows, indent=2))
        return
    width = max(len(r["id"]) for r in rows)
    for row in rows:
        needs = f"  needs: {', '.join(row['needs'])}" if row["needs"] else ""
        extra = "" if row["selected"] else "  (needed)"
        image = f"image: {row['image']}" if row["image"] else "vm"
        print(f"{row['id']:<{width}}  {image}{needs}{extra}")


def print_cache(stats: dict[str, Any], removed: int | None, enabled: bool,
                as_json: bool) -> None:
    """`pipeline cache`: its size and limit, and how many entries were removed."""
    stats = {**stats, **({"removed": removed} if removed is not None else {})}
    if as_json:
        print(json.dumps(stats, indent=2))
        return
    if removed is not None:
        print(f"removed {removed} entries")
    print(f"{stats['root']}: {stats['entries']} entries, {stats['bytes'] / 2**20:.1f} MB "
          f"of {stats['limit'] / 2**20:.0f} MB"
          + (" (disabled: KMATRIX_RESULT_CACHE_MB=0)" if not enabled else ""))


def past_runs(reports: Path) -> list[dict[str, Any]]:
    """One row per readable run in `reports`, oldest first (reports/latest skipped)."""
    rows = []
    for path in sorted(reports.glob("*")):
        if path.is_symlink() or not (path / "summary.json").is_file():
            continue
        try:
            summary = json.loads((path / "summary.json").read_text())
        except (OSError, json.JSONDecodeError):
            continue
        tests = summary.get("tests", {})
        rows.append({"run": path.name, "status": summary.get("status"),
                     "started": summary.get("started"), "jobs": summary.get("jobs", {}),
                     "tests": tests, "path": str(path)})
    return rows


def print_runs(reports: Path, as_json: bool) -> None:
    """`pipeline runs`: one line per past run (or JSON)."""
    rows = past_runs(reports)
    if as_json:
        print(json.dumps(rows, indent=2))
        return
    if not rows:
        print(f"no runs in {reports}")
    for row in rows:
        jobs = ", ".join(f"{n} {s}" for s, n in row["jobs"].items())
        failed = row["tests"].get("failures", 0) + row["tests"].get("errors", 0)
        print(f"{row['run']}  {row['status']:<7} {row['started']}  jobs: {jobs}; "
              f"tests: {row['tests'].get('total', 0)} ({failed} failed)")
