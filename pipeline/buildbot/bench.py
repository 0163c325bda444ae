"""A bench job's comparison in a Buildbot build: the master-side twin of `pipeline run`'s
report-time comparison (pipeline/report/benchmarks.py), with the same judging code.

The `bench` step runs after `publish`, on <results>/<revision>/<job id>/bench.json. Its
baseline is the bench.json of the same builder's newest earlier complete build whose
result is SUCCESS: the copy `report` kept in <artifacts>/<buildid>/, else (pruned, or a
build from before this step) that build's published folder if it still says passed. A
failed build is never a baseline, so a regression keeps failing until the numbers are
back. compare_bench judges with the job's threshold; the comparison goes into the
published bench.json (comparison_json's shape, `baseline_run` = the baseline's revision,
plus `baseline_build`); a regression fails the metric's JUnit case and metadata.json
(fail_job) and the step, whose summary (the build's too) names the metric, both values
and the threshold.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from buildbot.data import resultspec
from buildbot.process import buildstep
from buildbot.process.results import EXCEPTION, FAILURE, SKIPPED, SUCCESS
from twisted.internet import defer

from pipeline.buildbot.steps import revision_dir
from pipeline.buildbot.transfer import revision_of
from pipeline.errors import ReportError
from pipeline.fsutil import atomic_write_text
from pipeline.report.benchmarks import (
    BENCH_FILE,
    comparison_json,
    fail_job,
    read_json,
    regression_summary,
)
from pipeline.results.bench import (
    REGRESSED,
    Metric,
    compare_bench,
    metrics_from_json,
    tally,
    verdict_line,
)
from pipeline.results.status import OK_STATUSES, PASSED, JobResult

BASELINE_DEPTH = 50  # successful builds searched, newest first, for one with metrics


@dataclass(frozen=True)
class Baseline:
    """The build a bench job is compared with, and its metrics."""

    number: int
    buildid: int
    builderid: int
    revision: str
    path: Path
    metrics: list[Metric]


def job_result(job_id: str, folder: Path) -> JobResult:
    """The job's result as its published metadata.json has it (for fail_job)."""
    meta = read_json(folder / "metadata.json") or {}
    tests = meta.get("tests") if isinstance(meta.get("tests"), dict) else {}
    return JobResult(job_id, str(meta.get("status") or PASSED),
                     message=str(meta.get("message") or ""),
                     failures=int(tests.get("failures") or 0), directory=job_id)


def _property(props: dict[str, Any] | None, name: str) -> Any:
    value = (props or {}).get(name)
    return value[0] if isinstance(value, list | tuple) else value


class BenchCompare(buildstep.BuildStep):
    """This build's bench.json against the builder's last successful build's."""

    name = "bench"
    alwaysRun = True
    flunkOnFailure = True

    def __init__(self, job_id: str, threshold: float, results: str, artifacts: str,
                 **kwargs: Any) -> None:
        self.job_id, self.threshold = job_id, threshold
        self.results_root, self.artifacts_root = results, artifacts
        super().__init__(**kwargs)

    @defer.inlineCallbacks
    def run(self) -> Any:
        folder = revision_dir(Path(self.results_root), revision_of(self)) / self.job_id
        data = read_json(folder / BENCH_FILE)
        if data is None:
            yield self.addCompleteLog("bench", f"no {BENCH_FILE} in {folder}\n")
            self.descriptionDone = [f"no {BENCH_FILE}"]
            return SKIPPED
        metrics = metrics_from_json(data)
        found = yield self._baseline()
        verdicts = compare_bench(metrics, found.metrics if found else None, self.threshold)
        data["comparison"] = comparison_json(
            (found.revision, found.metrics) if found else None, self.threshold, verdicts,
            metrics)
        data["comparison"]["baseline_build"] = found.number if found else None
        regressed = [v for v in verdicts if v.verdict == REGRESSED]
        try:
            atomic_write_text(folder / BENCH_FILE, json.dumps(data, indent=2) + "\n")
            if regressed:
                fail_job(folder, job_result(self.job_id, folder), regressed)
        except (OSError, ReportError) as exc:
            yield self.addCompleteLog("bench", f"cannot write the comparison: {exc}\n")
            self.descriptionDone = ["cannot write the comparison"]
            return EXCEPTION
        yield self.addCompleteLog("bench", self._log(found, metrics, verdicts, data))
        if found:
            yield self.addURL(f"baseline: build {found.number}",
                              f"{self.master.config.buildbotURL}#/builders/"
                              f"{found.builderid}/builds/{found.number}")
        self.descriptionDone = [regression_summary(regressed) if regressed else
                                f"bench: {tally(verdicts)}" + (
                                    f" vs build {found.number}" if found else
                                    " (no earlier successful build to compare with)")]
        return FAILURE if regressed else SUCCESS

    def _log(self, found: Baseline | None, metrics: list[Metric], verdicts: list[Any],
             data: dict[str, Any]) -> str:
        head = (f"baseline: build {found.number} ({found.revision}), {found.path}"
                if found else "no baseline: no earlier successful build of this builder "
                              f"with a {BENCH_FILE}")
        lines = [head, f"threshold: {self.threshold:g} % and the larger spread of the two builds"]
        lines += [verdict_line(m, v) for m, v in zip(metrics, verdicts, strict=True)]
        lines += [v.message for v in verdicts if v.verdict == REGRESSED]
        missing = data["comparison"]["missing"]
        if missing:
            lines.append(f"missing (in the baseline, not in this build): {', '.join(missing)}")
        return "\n".join(lines) + "\n"

    @defer.inlineCallbacks
    def _baseline(self) -> Any:
        """The newest earlier SUCCESS build of this builder with a readable bench.json."""
        builderid = yield self.build.getBuilderId()
        builds = yield self.master.data.get(
            ("builders", builderid, "builds"),
            filters=[resultspec.Filter("complete", "eq", [True]),
                     resultspec.Filter("results", "eq", [SUCCESS]),
                     resultspec.Filter("number", "lt", [self.build.number])],
            order=["-number"], limit=BASELINE_DEPTH)
        for build in builds:
            props = yield self.master.data.get(("builds", build["buildid"], "properties"))
            revision = str(_property(props, "got_revision") or _property(props, "revision")
                           or "unknown")
            for path in self._files_of(build["buildid"], revision):
                metrics = metrics_from_json(read_json(path))
                if metrics:
                    return Baseline(build["number"], build["buildid"], builderid, revision,
                                    path, metrics)
        return None

    def _files_of(self, buildid: int, revision: str) -> list[Path]:
        """Where a build's bench.json may be: the copy `report` kept, else its published
        folder while that still holds a passed result (a later failed rebuild of the same
        revision replaces it)."""
        kept = Path(self.artifacts_root) / str(buildid) / BENCH_FILE
        folder = revision_dir(Path(self.results_root), revision) / self.job_id
        meta = read_json(folder / "metadata.json") or {}
        published = [folder / BENCH_FILE] if meta.get("status") in OK_STATUSES else []
        return [kept, *published]
