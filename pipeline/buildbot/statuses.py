"""Commit statuses on GitHub / GitLab, posted by Buildbot's own reporters.

One summary status per buildset ("kmatrix": pending when it is created, then success or
failure with the cells' tally), linking to the branch's matrix, and optionally one per
cell ("kmatrix/<job id>", Buildbot's default start/end statuses linking to the build).
"""

from __future__ import annotations

import urllib.parse
from typing import Any

from buildbot import interfaces
from buildbot.data import resultspec
from buildbot.process.properties import Interpolate
from buildbot.process.results import CANCELLED, EXCEPTION, FAILURE, SKIPPED, SUCCESS, WARNINGS
from buildbot.reporters.generators.build import BuildStartEndStatusGenerator
from buildbot.reporters.github import GitHubStatusPush
from buildbot.reporters.gitlab import GitLabStatusPush
from buildbot.reporters.message import MessageFormatterRenderable
from twisted.internet import defer
from twisted.python import log
from zope.interface import implementer

from pipeline.buildbot.forge import Forge

DASHBOARD_PATH = "plugins/wsgi_dashboards/matrix/index.html"
TALLY = {SUCCESS: "passed", WARNINGS: "passed", FAILURE: "failed", SKIPPED: "skipped",
         EXCEPTION: "errored", CANCELLED: "cancelled"}


def matrix_link(www_url: str, branch: str | None, revision: str | None) -> str:
    """The Matrix page of a branch (pull requests: refs/pull/N/head), else of a commit."""
    query = {"branch": branch} if branch else {"revision": revision or ""}
    return f"{www_url}{DASHBOARD_PATH}?{urllib.parse.urlencode(query)}"


def summary_state(results: int | None, complete: bool) -> str:
    """GitHub's word (pending, success, failure, error) for a buildset."""
    if not complete:
        return "pending"
    if results in (SUCCESS, WARNINGS):
        return "success"
    return "failure" if results in (FAILURE, SKIPPED) else "error"


@implementer(interfaces.IReportGenerator)
class MatrixSummaryGenerator:
    """A report when a buildset is created (pending) and when it completes (the tally)."""

    wanted_event_keys = [("buildsets", None, "new"), ("buildsets", None, "complete")]
    compare_attrs = ("www_url",)

    def __init__(self, www_url: str) -> None:
        self.www_url = www_url

    def check(self) -> None:
        pass

    def generate_name(self) -> str:
        return "MatrixSummaryGenerator"

    @defer.inlineCallbacks
    def generate(self, master: Any, reporter: Any, key: Any, message: Any) -> Any:
        buildset = yield master.data.get(("buildsets", message["bsid"]))
        requests = yield master.data.get(("buildrequests",), filters=[
            resultspec.Filter("buildsetid", "eq", [message["bsid"]])])
        complete = bool(buildset["complete"])
        counts: dict[str, int] = {}
        for req in requests:
            word = TALLY.get(req["results"], "other") if req["complete"] else "waiting"
            counts[word] = counts.get(word, 0) + 1
        tally = ", ".join(f"{n} {word}" for word, n in sorted(counts.items()))
        return {"kmatrix_summary": True, "buildset": buildset, "builds": [],
                "state": summary_state(buildset["results"], complete),
                "body": f"kmatrix: {tally or 'no cells'}", "users": [], "logs": [],
                "patches": []}


class _SummaryMixin:
    """The summary's link base and context as service arguments (kept across reconfigs)."""

    def checkConfig(self, token: Any, summary_url: str = "", summary_context: str = "kmatrix",
                    **kwargs: Any) -> None:
        super().checkConfig(token, **kwargs)  # type: ignore[misc]

    @defer.inlineCallbacks
    def reconfigService(self, token: Any, summary_url: str = "",
                        summary_context: str = "kmatrix", **kwargs: Any) -> Any:
        self.summary_url, self.summary_context = summary_url, summary_context
        yield super().reconfigService(token, **kwargs)  # type: ignore[misc]

    @defer.inlineCallbacks
    def sendMessage(self, reports: list[dict[str, Any]]) -> Any:
        """Buildbot's per-cell statuses, or the summary for each commit of a buildset."""
        report = reports[0]
        if not report.get("kmatrix_summary"):
            yield super().sendMessage(reports)  # type: ignore[misc]
            return
        for stamp, link in _summary_targets(report, self.summary_url):
            response = yield self.post_summary(stamp, report, link)
            if response is not None and response.code not in (200, 201, 204):
                log.msg(f"kmatrix: {self.forge} refused the status of {stamp['revision']}: "
                        f"HTTP {response.code}")


def _summary_targets(report: dict[str, Any], www_url: str) -> list[tuple[dict, str]]:
    stamps = report["buildset"].get("sourcestamps") or []
    return [(ss, matrix_link(www_url, ss.get("branch"), ss.get("revision")))
            for ss in stamps if ss.get("revision")]


class MatrixGitHubStatusPush(_SummaryMixin, GitHubStatusPush):
    """GitHub statuses: the buildset summary, and per cell when configured."""

    name = "MatrixGitHubStatusPush"
    forge = "GitHub"

    @defer.inlineCallbacks
    def post_summary(self, stamp: dict[str, Any], report: dict[str, Any], link: str) -> Any:
        owner, repo = self._extract_github_info(stamp)
        if not owner or not repo:
            log.msg(f"kmatrix: no GitHub repository for {stamp.get('repository')!r}")
            return None
        response = yield self.createStatus(
            repo_user=owner, repo_name=repo, sha=stamp["revision"], state=report["state"],
            target_url=link, context=self.summary_context, description=report["body"],
            props=None)
        return response

    @defer.inlineCallbacks
    def _get_auth_header(self, props: Any) -> Any:
        token = self.token if props is None else (yield props.render(self.token))
        return {"Authorization": f"token {token}"}


class MatrixGitLabStatusPush(_SummaryMixin, GitLabStatusPush):
    """GitLab commit statuses: the buildset summary, and per cell when configured."""

    name = "MatrixGitLabStatusPush"
    forge = "GitLab"
    STATE = {"success": "success", "failure": "failed", "error": "failed",
             "pending": "pending"}

    @defer.inlineCallbacks
    def post_summary(self, stamp: dict[str, Any], report: dict[str, Any], link: str) -> Any:
        project = yield self.getProjectId(stamp)
        if project is None:
            return None
        response = yield self.createStatus(
            project_id=project, branch=stamp.get("branch"), sha=stamp["revision"],
            state=self.STATE[report["state"]], target_url=link,
            description=report["body"], context=self.summary_context)
        return response


def reporters(forge: Forge | None, www_url: str) -> list[Any]:
    """The status reporter for the configured forge (none without one)."""
    if forge is None:
        return []
    generators: list[Any] = []
    if forge.summary:
        generators.append(MatrixSummaryGenerator(www_url))
    if forge.cells:
        generators.append(BuildStartEndStatusGenerator(
            start_formatter=MessageFormatterRenderable("running"),
            end_formatter=MessageFormatterRenderable("done")))
    cls = MatrixGitHubStatusPush if forge.kind == "github" else MatrixGitLabStatusPush
    return [cls(token=forge.token, baseURL=forge.api_url, generators=generators,
                context=Interpolate(f"{forge.context}/%(prop:buildername)s"),
                summary_url=www_url, summary_context=forge.context)]
