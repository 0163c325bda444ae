"""Buildbot pieces that run inside the master: the needs gate, master-side steps, services.

Ordering (docs/BUILDBOT.md): a build request of a builder with needs is not started while
a build request of one of its needs in the *same buildset* is unfinished (the builder's
`canStartBuild`); the `needs` step then checks that those builds succeeded and links them.
`NeedsKicker` re-runs the build request distributor of the waiting builders whenever a
build request completes, so nothing depends on a worker slot freeing up.
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from buildbot.data import resultspec
from buildbot.process import buildstep
from buildbot.process.results import EXCEPTION, FAILURE, SKIPPED, SUCCESS, WARNINGS, Results
from buildbot.util import service
from buildbot.util.test_result_submitter import TestResultSubmitter
from twisted.internet import defer
from twisted.python import log

OK_RESULTS = (SUCCESS, WARNINGS)
STEP_MARK = re.compile(r"^== step (?P<name>\S+) \(")
STEP_END = re.compile(r"^== step (?P<name>\S+): exit (?P<code>\S+)")


@defer.inlineCallbacks
def need_requests(master: Any, bsid: int, needs: list[str]) -> Any:
    """{need builder name: [build request dicts]} for the needs present in buildset bsid."""
    requests = yield master.data.get(
        ("buildrequests",), filters=[resultspec.Filter("buildsetid", "eq", [bsid])])
    names: dict[int, str] = {}
    for request in requests:
        builderid = request["builderid"]
        if builderid not in names:
            builder = yield master.data.get(("builders", builderid))
            names[builderid] = builder["name"] if builder else ""
    found: dict[str, list[dict[str, Any]]] = {}
    for request in requests:
        name = names[request["builderid"]]
        if name in needs:
            found.setdefault(name, []).append(request)
    return found


def can_start_build(needs_of: dict[str, list[str]]) -> Callable[..., Any]:
    """A BuilderConfig.canStartBuild: wait until the needs in the same buildset completed."""

    @defer.inlineCallbacks
    def check(builder: Any, _workerforbuilder: Any, breq: Any) -> Any:
        needs = needs_of.get(builder.name) or []
        if not needs:
            return True
        try:
            found = yield need_requests(builder.master, breq.bsid, needs)
        except Exception:  # never wedge the distributor
            log.err(None, f"kmatrix: checking needs of {builder.name}")
            return False
        return all(r["complete"] for requests in found.values() for r in requests)

    return check


class NeedsKicker(service.BuildbotService):
    """Re-examine the waiting builders when any build request completes."""

    name = "kmatrix-needs-kicker"

    def checkConfig(self, waiting: list[str] | None = None, **_kw: Any) -> None:
        pass

    @defer.inlineCallbacks
    def reconfigService(self, waiting: list[str] | None = None, **_kw: Any) -> Any:
        self.waiting = list(waiting or [])
        yield super().reconfigService()

    @defer.inlineCallbacks
    def startService(self) -> Any:
        yield super().startService()
        self._consumer = yield self.master.mq.startConsuming(
            self._completed, ("buildrequests", None, "complete"))

    @defer.inlineCallbacks
    def stopService(self) -> Any:
        if getattr(self, "_consumer", None):
            yield self._consumer.stopConsuming()
            self._consumer = None
        yield super().stopService()

    def _completed(self, _key: Any, _msg: Any) -> None:
        if self.waiting:
            self.master.botmaster.brd.maybeStartBuildsOn(self.waiting)


def revision_dir(results: Path, revision: str | None) -> Path:
    return results / (revision or "unknown")


SKIP_PROPERTY = "kmatrix_skipped"
# Buildbot's test_results.duration_ns is a 32-bit integer column: on PostgreSQL a longer
# case fails the whole insert (sqlite does not check). Such durations are left out; the
# JUnit kept with the build has them all.
MAX_DURATION_NS = 2**31 - 1


def duration_ns(seconds: float) -> int | None:
    """A test case's duration as Buildbot can store it, or None when it cannot."""
    value = int(seconds * 1e9)
    return value if 0 <= value <= MAX_DURATION_NS else None


def not_skipped(step: buildstep.BuildStep) -> bool:
    """doStepIf of every step after CheckNeeds: false once a need failed."""
    return not step.getProperty(SKIP_PROPERTY)


def hide_skipped(results: int, _step: buildstep.BuildStep) -> bool:
    return results == SKIPPED


class CheckNeeds(buildstep.BuildStep):
    """First step of a builder with needs: every need of this revision has passed; if one
    did not, the build ends SKIPPED with the reason (as `pipeline run` skips it)."""

    name = "needs"
    haltOnFailure = True
    flunkOnFailure = True
    updateBuildSummaryPolicy = [FAILURE, SKIPPED, EXCEPTION]  # the reason is the build's

    def __init__(self, needs: list[str], results: str, **kwargs: Any) -> None:
        self.needs = list(needs)
        self.results_root = results
        super().__init__(**kwargs)

    @defer.inlineCallbacks
    def run(self) -> Any:
        found = yield need_requests(self.master, self.build.requests[0].bsid, self.needs)
        revision = self.build.getSourceStamp().revision if self.build.getSourceStamp() else None
        lines, failed = [], []
        for need in self.needs:
            requests = found.get(need)
            if requests:
                request = requests[-1]
                builds = yield self.master.data.get(
                    ("buildrequests", request["buildrequestid"], "builds"))
                result = request["results"]
                lines.append(f"{need}: {Results[result] if result is not None else 'none'}"
                             f" (build request {request['buildrequestid']})")
                for build in builds[-1:]:
                    url = (f"{self.master.config.buildbotURL}#/builders/{build['builderid']}"
                           f"/builds/{build['number']}")
                    yield self.addURL(f"need {need}", url)
                if result not in OK_RESULTS:
                    failed.append(need)
                continue
            meta = revision_dir(Path(self.results_root), revision) / need / "metadata.json"
            status = json.loads(meta.read_text()).get("status") if meta.is_file() else None
            lines.append(f"{need}: not in this buildset; results of {revision}: "
                         f"{status or 'missing'}")
            if status != "passed":
                failed.append(need)
        yield self.addCompleteLog("needs", "\n".join(lines) + "\n")
        if failed:
            reason = f"needs failed: {', '.join(failed)}"
            self.setProperty(SKIP_PROPERTY, reason, "kmatrix")
            self.descriptionDone = [f"skipped: {reason}"]
            self.build.results = SKIPPED  # the build's result, not only this step's
            return SKIPPED
        self.descriptionDone = [f"{len(self.needs)} needs passed"]
        return SUCCESS


class JobStepReport(buildstep.BuildStep):
    """One step of the matrix job, shown separately with its part of log.txt."""

    def __init__(self, text: str, result: int, summary: str, **kwargs: Any) -> None:
        self.text, self.result, self.summary = text, result, summary
        super().__init__(**kwargs)

    @defer.inlineCallbacks
    def run(self) -> Any:
        yield self.addCompleteLog("log", self.text or "(no output)\n")
        self.descriptionDone = [self.summary]
        return self.result


def split_log(text: str) -> list[tuple[str, str, str]]:
    """log.txt -> [(step name, its lines, exit code text)] using the `== step` markers."""
    parts: list[tuple[str, list[str], str]] = []
    for line in text.splitlines():
        start = STEP_MARK.match(line)
        if start:
            parts.append((start.group("name"), [line], ""))
            continue
        if parts:
            name, lines, _code = parts[-1]
            lines.append(line)
            end = STEP_END.match(line)
            if end and end.group("name") == name:
                parts[-1] = (name, lines, end.group("code"))
    return [(name, "\n".join(lines) + "\n", code) for name, lines, code in parts]


class JobReport(buildstep.BuildStep):
    """After `pipeline job`: JUnit into the test-results API, artifacts kept, one step per
    matrix step. Runs in the master on <results>/<revision>/<job id>/."""

    name = "report"
    alwaysRun = True
    flunkOnFailure = False

    def __init__(self, job_id: str, results: str, artifacts: str, artifacts_url: str,
                 **kwargs: Any) -> None:
        self.job_id, self.results_root = job_id, results
        self.artifacts_root, self.artifacts_url = artifacts, artifacts_url
        super().__init__(**kwargs)

    @defer.inlineCallbacks
    def run(self) -> Any:
        revision = self.getProperty("got_revision") or self.getProperty("revision")
        directory = revision_dir(Path(self.results_root), revision) / self.job_id
        if not (directory / "junit.xml").is_file():
            yield self.addCompleteLog("report", f"no results in {directory}\n")
            self.descriptionDone = ["no results"]
            return SKIPPED
        # keep this build's files (a rebuild of the revision overwrites the results dir)
        keep = Path(self.artifacts_root) / str(self.build.buildid)
        keep.mkdir(parents=True, exist_ok=True)
        for name in ("junit.xml", "log.txt", "metadata.json", "reproduce.sh", "bench.json"):
            if (directory / name).is_file():
                shutil.copy2(directory / name, keep / name)
                yield self.addURL(name, f"{self.artifacts_url}{self.build.buildid}/{name}")
        passed, failed = yield self._submit(directory / "junit.xml")
        meta = {}
        if (directory / "metadata.json").is_file():
            meta = json.loads((directory / "metadata.json").read_text())
        self.setProperty("kmatrix_status", meta.get("status", "unknown"), "kmatrix")
        self.setProperty("kmatrix_cached", bool((meta.get("cache") or {}).get("hit")),
                         "kmatrix")
        self.setProperty("kmatrix_tests", {"passed": passed, "failed": failed}, "kmatrix")
        codes = {s["name"]: s.get("exit_code") for s in meta.get("steps", [])}
        log_text = (directory / "log.txt").read_text(errors="replace") \
            if (directory / "log.txt").is_file() else ""
        reports = []
        for name, text, logged_code in split_log(log_text):
            code = codes.get(name, logged_code)
            ok = code in (0, "0")
            reports.append(JobStepReport(
                text, SUCCESS if ok else FAILURE, f"exit {code}",
                name=f"step {name}", flunkOnFailure=False, warnOnFailure=False,
                alwaysRun=True, hideStepIf=False))
        if reports:
            self.build.addStepsAfterCurrentStep(reports)
        self.descriptionDone = [f"{passed} passed, {failed} failed"]
        return SUCCESS

    @defer.inlineCallbacks
    def _submit(self, junit: Path) -> Any:
        from junitparser import JUnitXml, TestSuite

        xml = JUnitXml.fromfile(str(junit))
        suites = [xml] if isinstance(xml, TestSuite) else list(xml)
        submitter = TestResultSubmitter()
        yield submitter.setup(self, f"JUnit: {self.job_id}", "pass_fail", "boolean")
        passed = failed = 0
        for suite in suites:
            for case in suite:
                kinds = {type(r).__name__ for r in case.result}
                if "Skipped" in kinds:
                    continue
                ok = not ({"Failure", "Error"} & kinds)
                passed, failed = passed + ok, failed + (not ok)
                seconds = case.time or 0.0
                submitter.add_test_result(
                    "1" if ok else "0", test_name=f"{case.classname}.{case.name}",
                    duration_ns=duration_ns(seconds))
        yield submitter.finish()
        return passed, failed
