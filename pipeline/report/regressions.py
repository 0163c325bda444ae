"""Compare a run's test results with an earlier run of the same matrix (pure but for loading).

A test is identified by (job id, test name), where the job id is the JUnit suite name the
runner gives each job (`kmod-build/6.1`) and the test name is `classname.name`, the same
name summary.json's `failing` lists. Statuses are passed, failed, error and skipped;
failed and error count as failing.

Only jobs that ran in the current run are compared, so a run filtered with `--kernel 6.1`
does not report the other kernels' tests as removed.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from junitparser import JUnitXml, TestSuite

from pipeline.results.merge import NOT_RUN
from pipeline.results.status import ERROR, FAILED, PASSED, SKIPPED

FAILING = frozenset({FAILED, ERROR})
# When a test name occurs twice in one job, the worse outcome wins.
_RANK = {PASSED: 0, SKIPPED: 1, FAILED: 2, ERROR: 3}


@dataclass(frozen=True)
class TestStatus:
    """The outcome of one test case in one job."""

    __test__ = False  # not a pytest class

    job: str
    name: str
    status: str
    message: str = ""

    @property
    def key(self) -> tuple[str, str]:
        return (self.job, self.name)

    @property
    def failing(self) -> bool:
        return self.status in FAILING


TestStatuses = Mapping[tuple[str, str], TestStatus]


@dataclass(frozen=True)
class Change:
    """One test in a regressions list, with its status now and in the baseline."""

    job: str
    name: str
    status: str | None  # None: not in the current run (removed)
    message: str
    baseline_status: str | None  # None: not in the baseline (new test)
    baseline_message: str = ""

    @property
    def short_name(self) -> str:
        """The test name without its job id prefix (`build` for `kmod-build/6.1.build`)."""
        prefix = f"{self.job}."
        return self.name[len(prefix):] if self.name.startswith(prefix) else self.name


@dataclass
class Regressions:
    """Differences between a run and its baseline, each list sorted by job and name.

    newly_failing: failing now, passing/skipped/absent in the baseline
    fixed:         failing in the baseline, passing or skipped now
    still_failing: failing in both
    new_tests:     only in the current run (any status; a failing one is also newly_failing)
    removed_tests: only in the baseline, in a job the current run ran (removed or not run,
                   e.g. tests after a failed build step)
    """

    baseline_run: str | None = None
    newly_failing: list[Change] = field(default_factory=list)
    fixed: list[Change] = field(default_factory=list)
    still_failing: list[Change] = field(default_factory=list)
    new_tests: list[Change] = field(default_factory=list)
    removed_tests: list[Change] = field(default_factory=list)

    @property
    def has_regressions(self) -> bool:
        return bool(self.newly_failing)

    def counts(self) -> dict[str, int]:
        return {
            "newly_failing": len(self.newly_failing), "fixed": len(self.fixed),
            "still_failing": len(self.still_failing), "new_tests": len(self.new_tests),
            "removed_tests": len(self.removed_tests),
        }

    def to_json(self) -> dict[str, Any]:
        def rows(changes: list[Change]) -> list[dict[str, Any]]:
            return [c.__dict__.copy() for c in changes]

        return {"baseline": self.baseline_run, "newly_failing": rows(self.newly_failing),
                "fixed": rows(self.fixed), "still_failing": rows(self.still_failing),
                "new_tests": rows(self.new_tests), "removed_tests": rows(self.removed_tests)}


def compare(current: TestStatuses | Iterable[TestStatus],
            baseline: TestStatuses | Iterable[TestStatus],
            baseline_run: str | None = None) -> Regressions:
    """Classify every test of `current` against `baseline` (pure)."""
    now = _index(current)
    before = _index(baseline)
    jobs_now = {job for job, _ in now}
    out = Regressions(baseline_run=baseline_run)
    for key in sorted(now.keys() | before.keys()):
        cur, old = now.get(key), before.get(key)
        if cur is None and key[0] not in jobs_now:
            continue  # the job did not run this time: nothing to say about its tests
        change = Change(
            job=key[0], name=key[1],
            status=cur.status if cur else None, message=cur.message if cur else "",
            baseline_status=old.status if old else None,
            baseline_message=old.message if old else "",
        )
        if cur is None:
            out.removed_tests.append(change)
            continue
        if old is None:
            out.new_tests.append(change)
        if cur.failing and (old is None or not old.failing):
            out.newly_failing.append(change)
        elif cur.failing and old is not None and old.failing:
            out.still_failing.append(change)
        elif old is not None and old.failing:
            out.fixed.append(change)
    return out


def _index(statuses: TestStatuses | Iterable[TestStatus]) -> dict[tuple[str, str], TestStatus]:
    if isinstance(statuses, Mapping):
        return dict(statuses)
    return {s.key: s for s in statuses}


# --- loading ---------------------------------------------------------------------------

# The elements junitparser reads as a case's results (its FinalResult types), by tag.
_RESULT_TAGS = {"failure": FAILED, "error": ERROR, "skipped": SKIPPED}


def _case_status(case: Any) -> tuple[str, str]:
    """The worst result of a testcase element and its message (junitparser's case.result:
    every failure, error or skipped element within it)."""
    status, message = PASSED, ""
    for result in case.iter():
        found = _RESULT_TAGS.get(result.tag)
        if found and _RANK[found] > _RANK[status]:
            status, message = found, (result.get("message") or "")
    return status, message


def _cases(suite: Any) -> Iterator[Any]:
    """The testcase elements of a testsuite element, then its nested suites' (the order
    in which junitparser iterates a TestSuite)."""
    yield from suite.iterfind("testcase")
    for nested in suite.iterfind("testsuite"):
        yield from _cases(nested)


def statuses_from_xml(xml: JUnitXml | TestSuite, job: str | None = None
                      ) -> dict[tuple[str, str], TestStatus]:
    """Test statuses of a parsed JUnit document; the job is each suite's name unless given.
    Read from its elements: what junitparser's objects give, several times faster."""
    root = xml._elem
    suites = [root] if isinstance(xml, TestSuite) else list(root.iterfind("testsuite"))
    out: dict[tuple[str, str], TestStatus] = {}
    for suite in suites:
        suite_job = job or suite.get("name") or ""
        for case in _cases(suite):
            classname = case.get("classname") or ""
            name = f"{classname}.{case.get('name')}" if classname else (case.get("name") or "")
            status, message = _case_status(case)
            job_id = suite_job or classname
            key = (job_id, name)
            previous = out.get(key)
            if previous is None or _RANK[status] > _RANK[previous.status]:
                out[key] = TestStatus(job_id, name, status, message)
    return out


def load_junit(path: Path, job: str | None = None) -> dict[tuple[str, str], TestStatus]:
    """Test statuses of one JUnit file (empty if it is missing or unreadable)."""
    try:
        xml = JUnitXml.fromfile(str(path))
    except Exception:  # missing file, or any of the XML parsers' errors
        return {}
    return statuses_from_xml(xml, job)


def load_run(run_dir: Path) -> dict[tuple[str, str], TestStatus]:
    """Test statuses of a run: its merged junit.xml, else each job's junit.xml."""
    merged = run_dir / "junit.xml"
    if merged.is_file():
        found = load_junit(merged)
        if found:
            return found
    out: dict[tuple[str, str], TestStatus] = {}
    summary = _read_summary(run_dir)
    for row in (summary or {}).get("results", []):
        directory = row.get("directory") or row.get("id")
        if directory:
            out.update(load_junit(run_dir / directory / "junit.xml", job=row.get("id")))
    return out


def compare_runs(run_dir: Path, baseline_dir: Path) -> Regressions:
    """compare() of two run directories."""
    return compare(ran(load_run(run_dir)), ran(load_run(baseline_dir)),
                   baseline_run=baseline_dir.name)


def _read_summary(run_dir: Path) -> dict[str, Any] | None:
    try:
        data = json.loads((run_dir / "summary.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _same_path(a: str | Path, b: str | Path) -> bool:
    if str(a) == str(b):
        return True
    try:
        return Path(a).resolve() == Path(b).resolve()
    except OSError:
        return False


class EarlierRuns:
    """The runs before run_dir of the same matrix (by summary.json), newest first by run id
    (ids are start times: 20261127-154601-3fa2); each summary.json is read only when a walk
    gets that far, so finding the latest run costs the same with 3 runs as with 3,000.

    Runs without a readable summary.json (still running, crashed), other matrices' runs and
    symlinks such as reports/latest are skipped. Iterate it as often as needed.
    """

    def __init__(self, reports_dir: Path, run_dir: Path, matrix_path: Path | str) -> None:
        self._matrix = matrix_path
        self._found: list[Path] = []
        names: list[str] = []
        if reports_dir.is_dir():
            names = sorted((e.name for e in os.scandir(reports_dir)
                            if e.name < run_dir.name and not e.name.startswith(".")
                            and e.is_dir(follow_symlinks=False)), reverse=True)
        self._pending = (reports_dir / name for name in names)

    def _more(self) -> bool:
        for entry in self._pending:
            summary = _read_summary(entry)
            if summary is not None and _same_path(summary.get("matrix", ""), self._matrix):
                self._found.append(entry)
                return True
        return False

    def __iter__(self) -> Iterator[Path]:
        index = 0
        while index < len(self._found) or self._more():
            yield self._found[index]
            index += 1

    def __bool__(self) -> bool:
        return bool(self._found) or self._more()


def find_baseline(reports_dir: Path, run_dir: Path, matrix_path: Path | str) -> Path | None:
    """The newest run before run_dir of the same matrix, or None (EarlierRuns)."""
    return next(iter(EarlierRuns(reports_dir, run_dir, matrix_path)), None)


def ran(statuses: dict[tuple[str, str], TestStatus]) -> dict[tuple[str, str], TestStatus]:
    """Without the placeholder cases of jobs that did not run (skipped, cancelled, ...)."""
    return {k: v for k, v in statuses.items() if not k[1].endswith(NOT_RUN)}


def per_job_baseline(current: dict[tuple[str, str], TestStatus], runs: list[Path]
                     ) -> tuple[dict[tuple[str, str], TestStatus], list[str]]:
    """For each job of `current`, its tests in the newest of `runs` that ran it (a run
    filtered with --kernel is not the baseline of the jobs it left out); the runs used."""
    wanted = {job for job, _ in current}
    before: dict[tuple[str, str], TestStatus] = {}
    used: list[str] = []
    for run in runs if wanted else ():
        statuses = ran(load_run(run))
        take = {job for job, _ in statuses} & wanted
        if take:
            before.update({k: v for k, v in statuses.items() if k[0] in take})
            used.append(run.name)
            wanted -= take
        if not wanted:
            break  # before asking `runs` for another (EarlierRuns reads it then)
    return before, used


def regressions_for(reports_dir: Path, run_dir: Path, matrix_path: Path | str
                    ) -> Regressions | None:
    """The run's changes against, per job, the newest earlier run that ran that job; None
    when there is no earlier run. Jobs that did not run now are left out."""
    runs = EarlierRuns(reports_dir, run_dir, matrix_path)
    if not runs:
        return None
    current = ran(load_run(run_dir))
    before, used = per_job_baseline(current, runs)
    label = used[0] if len(used) == 1 else (
        f"{used[0]} (+{len(used) - 1} earlier for other jobs)" if used else next(iter(runs)).name)
    return compare(current, before, baseline_run=label)
