"""Bench jobs across runs: each bench job's metrics against its baseline, at report time.

The baseline of a bench job is its bench.json in the newest earlier run of the same matrix
(regressions.EarlierRuns) in which the job passed or was cached, or in the run
`--baseline` names (whatever the job's status there: comparing with a run accepts its
numbers). A failed run is never a baseline, so a regression keeps failing, also when the
next run restores the job from the result cache, until the numbers are back or accepted.

A metric that regressed (pipeline.results.bench.judge) fails its JUnit case
`bench.<metric>` and the job (FAILED, the message naming the metric, both values and the
threshold); bench.json gets the comparison. compare_benches() runs before the summary is
written, so summary.json, the merged junit.xml, index.html and the exit code agree.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import asdict
from pathlib import Path
from typing import Any

from pipeline.errors import ReportError
from pipeline.fsutil import atomic_path, atomic_write_text
from pipeline.model.expand import Job
from pipeline.results.bench import (
    CASE_PREFIX,
    REGRESSED,
    Metric,
    Verdict,
    compare_bench,
    metrics_from_json,
)
from pipeline.results.status import FAILED, OK_STATUSES, JobResult

BENCH_FILE = "bench.json"


def read_json(path: Path) -> dict[str, Any] | None:
    """A JSON object from a file (None when it is missing, unreadable or not an object)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _rows(run: Path) -> dict[str, dict[str, Any]]:
    """summary.json's result rows of a run, by job id."""
    summary = read_json(run / "summary.json") or {}
    rows = summary.get("results")
    return {str(r.get("id")): r for r in rows if isinstance(r, dict)} \
        if isinstance(rows, list) else {}


def find_baseline(runs: Iterable[Path], job_id: str, any_status: bool = False
                  ) -> tuple[str, list[Metric]] | None:
    """(run id, metrics) of the job's bench.json in the first of `runs` where the job
    passed or was cached (with `any_status`: where it left a bench.json at all)."""
    for run in runs:
        row = _rows(run).get(job_id)
        if row is None or not (any_status or row.get("status") in OK_STATUSES):
            continue
        data = read_json(run / str(row.get("directory") or job_id) / BENCH_FILE)
        metrics = metrics_from_json(data)
        if metrics:
            return run.name, metrics
    return None


def compare_benches(reports: Path, run_dir: Path, matrix_path: Path, jobs: list[Job],
                    results: dict[str, JobResult], baseline: Path | None = None) -> None:
    """Judge every bench job of the run against its baseline: bench.json gets the
    comparison; a regression fails the job (in `results`, its junit.xml and metadata.json).
    ReportError when a file cannot be written."""
    from pipeline.report.regressions import EarlierRuns

    benched = {j.id: spec.threshold for j in jobs if j.id in results
               and (spec := getattr(getattr(j, "spec", None), "bench", None)) is not None}
    if not benched:
        return
    runs = [baseline] if baseline else EarlierRuns(reports, run_dir, matrix_path)
    for job_id, threshold in benched.items():
        result = results[job_id]
        folder = run_dir / (result.directory or job_id)
        data = read_json(folder / BENCH_FILE)
        if data is None or not result.directory:
            continue
        found = find_baseline(runs, job_id, any_status=baseline is not None)
        metrics = metrics_from_json(data)
        verdicts = compare_bench(metrics, found[1] if found else None, threshold)
        data["comparison"] = comparison_json(found, threshold, verdicts, metrics)
        _write(folder / BENCH_FILE, json.dumps(data, indent=2) + "\n")
        regressed = [v for v in verdicts if v.verdict == REGRESSED]
        if regressed:
            fail_job(folder, result, regressed)


def comparison_json(found: tuple[str, list[Metric]] | None, threshold: float,
                    verdicts: list[Verdict], metrics: list[Metric]) -> dict[str, Any]:
    """bench.json's `comparison`: the baseline run, the threshold, each metric's verdict
    (and the baseline's metrics this run did not report)."""
    now = {m.name for m in metrics}
    return {"baseline_run": found[0] if found else None, "threshold_pct": threshold,
            "metrics": {v.name: {k: x for k, x in asdict(v).items() if k != "name"}
                        for v in verdicts},
            "missing": [m.name for m in (found[1] if found else []) if m.name not in now]}


def regression_summary(regressed: list[Verdict]) -> str:
    """The job's message: the first regression, and the names of the others."""
    more = [v.name for v in regressed[1:]]
    return regressed[0].message + (f" (also regressed: {', '.join(more)})" if more else "")


def fail_job(folder: Path, result: JobResult, regressed: list[Verdict]) -> None:
    """Fail the regressed metrics' cases in the job's junit.xml, and the job itself."""
    messages = {f"{CASE_PREFIX}{v.name}": v.message for v in regressed}
    _fail_cases(folder / "junit.xml", result.id, messages)
    result.failures += len(regressed)
    result.failing += [{"name": f"{result.id}.{name}", "kind": "failure", "message": text}
                       for name, text in messages.items()]
    if result.status in OK_STATUSES:
        result.status, result.message = FAILED, regression_summary(regressed)
    meta = read_json(folder / "metadata.json")
    if meta is not None:
        meta.update(status=result.status, message=result.message)
        tests = meta.get("tests")
        if isinstance(tests, dict):
            tests["failures"] = result.failures
        _write(folder / "metadata.json", json.dumps(meta, indent=2) + "\n")


def _fail_cases(junit: Path, job_id: str, messages: dict[str, str]) -> None:
    """Give the named cases of a job's junit.xml a Failure (added when missing)."""
    from junitparser import Failure, JUnitXml, TestCase, TestSuite

    from pipeline.results.merge import write_suite

    try:
        xml = JUnitXml.fromfile(str(junit))
    except Exception:  # missing or broken: the job's own problem, reported elsewhere
        return
    suites = [xml] if isinstance(xml, TestSuite) else list(xml)
    if not suites:
        return
    left = dict(messages)
    for suite in suites:
        for case in suite:
            if case.classname == job_id and case.name in left:
                case.result = [Failure(left.pop(case.name), "bench-regression")]
    for name, text in left.items():
        case = TestCase(name, classname=job_id)
        case.result = [Failure(text, "bench-regression")]
        suites[-1].add_testcase(case)
    for element in xml._elem.iter():  # the file's indentation: write_suite indents again
        if element.text is not None and not element.text.strip():
            element.text = None
        if element.tail is not None and not element.tail.strip():
            element.tail = None
    try:
        if isinstance(xml, TestSuite):
            write_suite(xml, junit)
        else:
            for suite in suites:
                suite.update_statistics()
            xml.update_statistics()
            with atomic_path(junit) as tmp:
                xml.write(str(tmp), pretty=True)
    except OSError as exc:
        raise ReportError(f"cannot write {junit}: {exc.strerror or exc}") from None


def _write(path: Path, text: str) -> None:
    try:
        atomic_write_text(path, text)
    except OSError as exc:
        raise ReportError(f"cannot write {path}: {exc.strerror or exc}") from None
