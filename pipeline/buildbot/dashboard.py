"""The "Matrix" page (buildbot-wsgi-dashboards, Flask + Jinja2).

For one commit (?revision=PREFIX), the run report's matrix (pipeline/report/view.py,
templates/matrix.html.j2): axis values x job kinds, each cell the newest build of that
builder for the commit, its Buildbot result mapped onto the one status model, with
pass/fail test counts from the test-results API and a link to the build. For a branch
(?branch=NAME, and /api/branch/NAME as JSON), the branch's state: each cell's newest build
among the branch's last BRANCH_DEPTH built commits, "carried" when that commit is older
than the head. Also serves kept build files (/artifacts/...) and the per-revision results
directories (/results/...).
"""

from __future__ import annotations

import html
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from flask import Flask, abort, jsonify, request, send_from_directory

from pipeline.report import view
from pipeline.report.view import ABSENT, PENDING, RUNNING, Cell, Link
from pipeline.results.status import CACHED, CANCELLED, ERROR, FAILED, INTERRUPTED, PASSED, SKIPPED

TEMPLATE = "dashboard.html.j2"
RECENT = 15
BRANCH_DEPTH = 30  # built commits of a branch searched for each cell's newest build
FORCED = "forced"  # in the reason of every buildset of the force form (config.py)
NEEDS_FAILED = re.compile(r"needs failed: ([^\s,;]+(?:, [^\s,;]+)*)")
# Buildbot's results codes (buildbot.process.results), in order, and their status
RESULTS = ("success", "warnings", "failure", "skipped", "exception", "retry", "cancelled")
STATUS_OF_RESULT = {
    "success": PASSED, "warnings": PASSED, "failure": FAILED, "skipped": SKIPPED,
    "exception": ERROR, "retry": INTERRUPTED, "cancelled": CANCELLED,
}
# the commit's status: the first of these any of its cells has
COMMIT_PRECEDENCE = (ERROR, FAILED, RUNNING, PENDING, INTERRUPTED, CANCELLED, SKIPPED,
                     CACHED, PASSED)
Get = Callable[..., Any]


def result_name(results: int | None, default: str) -> str:
    """Buildbot's word for a results code (`default` when there is none)."""
    return RESULTS[results] if results is not None and 0 <= results < len(RESULTS) \
        else default


def commit_status(cells: list[Cell]) -> str:
    """The worst state among a commit's cells (absent cells do not count)."""
    present = {c.status for c in cells}
    return next((s for s in COMMIT_PRECEDENCE if s in present), ABSENT)


@dataclass
class Stamps:
    """(buildset id, revision, branch) of the newest buildsets, newest first."""

    rows: list[tuple[int, str, str | None]] = field(default_factory=list)
    forced: set[int] = field(default_factory=set)  # buildsets of the force form

    @classmethod
    def load(cls, get: Get) -> Stamps:
        buildsets = get(("buildsets",), order=["-bsid"], limit=500)
        rows = [(bs["bsid"], ss["revision"], ss.get("branch"))
                for bs in buildsets
                for ss in bs.get("sourcestamps") or [] if ss.get("revision")]
        return cls(rows, {bs["bsid"] for bs in buildsets if FORCED in (bs.get("reason") or "")})

    def branches(self) -> list[str]:
        return sorted({b for _, _, b in self.rows if b})

    def pick(self, branch: str, revision: str) -> str | None:
        """The commit matching a revision prefix, else the newest one of the branch."""
        for _, rev, br in self.rows:
            if (revision and rev.startswith(revision)) or \
                    (not revision and (not branch or br == branch)):
                return rev
        return None

    def recent(self, branch: str = "") -> list[dict[str, Any]]:
        """The newest built commits (of `branch` when given), with their buildsets."""
        out: dict[str, dict[str, Any]] = {}
        for bsid, rev, br in self.rows:
            if branch and br != branch:
                continue
            if rev not in out and len(out) < RECENT:
                out[rev] = {"revision": rev, "branch": br, "bsids": [], "forced": False}
            if rev in out:
                out[rev]["bsids"].append(bsid)
                out[rev]["forced"] |= bsid in self.forced
        return list(out.values())

    def of_branch(self, branch: str) -> list[str]:
        """The branch's built commits, newest first (at most BRANCH_DEPTH)."""
        found: list[str] = []
        for _, rev, br in self.rows:
            if br == branch and rev not in found:
                found.append(rev)
        return found[:BRANCH_DEPTH]

    def buildsets(self, revision: str) -> list[int]:
        return [bsid for bsid, rev, _ in self.rows if rev == revision]

    def branch_of(self, revision: str) -> str | None:
        return next((br for _, rev, br in self.rows if rev == revision), None)


def requests_of(get: Get, bsids: list[int]) -> list[dict[str, Any]]:
    """The build requests of these buildsets: one query each, because the data API's
    buildrequests endpoint uses only the first value of a `buildsetid` filter."""
    from buildbot.data import resultspec

    return [req for bsid in dict.fromkeys(bsids) for req in get(
        ("buildrequests",), filters=[resultspec.Filter("buildsetid", "eq", [bsid])])]


def newest_builds(get: Get, bsids: list[int]
                  ) -> dict[str, tuple[dict[str, Any], dict[str, Any] | None]]:
    """{builder name: (its newest build request in these buildsets, that request's newest
    build or None)}."""
    from buildbot.data import resultspec

    builders = {b["builderid"]: b["name"] for b in get(("builders",))}
    requests = requests_of(get, bsids)
    builds: dict[int, dict[str, Any]] = {}
    if requests:
        for build in get(("builds",), filters=[resultspec.Filter(
                "buildrequestid", "eq", [r["buildrequestid"] for r in requests])]):
            old = builds.get(build["buildrequestid"])
            if old is None or build["buildid"] > old["buildid"]:
                builds[build["buildrequestid"]] = build
    newest: dict[str, tuple[dict[str, Any], dict[str, Any] | None]] = {}
    for req in sorted(requests, key=lambda r: r["buildrequestid"]):
        newest[builders.get(req["builderid"], "")] = (req, builds.get(req["buildrequestid"]))
    return newest


def _seconds(build: dict[str, Any]) -> float | None:
    start, end = build.get("started_at"), build.get("complete_at")
    if start is None or end is None:
        return None
    if isinstance(start, datetime) and isinstance(end, datetime):
        return (end - start).total_seconds()
    return float(end) - float(start)


def job_cell(job: Any, request_build: tuple[dict[str, Any], dict[str, Any] | None] | None,
             get: Get, url: str) -> Cell:
    """The cell of one job: absent (no request for this commit), pending, running or the
    build's result, with the test counts of its test result sets."""
    cell = Cell(id=job.id, name=job.name, axes=dict(job.axes()), status=ABSENT,
                message="not built for this commit")
    if request_build is None:
        return cell
    req, build = request_build
    cell.message = ""
    if build is None:
        cell.result = result_name(req["results"], "cancelled") if req["complete"] else ""
        cell.status = STATUS_OF_RESULT[cell.result] if cell.result else PENDING
        return cell
    cell.links = [Link("build", f"{url}#/builders/{build['builderid']}/builds/"
                                f"{build['number']}", target="_top")]
    if build["complete"]:
        cell.result = result_name(build["results"], "exception")
        cell.status = STATUS_OF_RESULT[cell.result]
        cell.duration = view.duration(_seconds(build))
    else:
        cell.status = RUNNING
    _cause_and_cache(cell, build, get)
    for trs in get(("builds", build["buildid"], "test_result_sets")):
        cell.passed += trs.get("tests_passed") or 0
        cell.failed += trs.get("tests_failed") or 0
    cell.tests = cell.passed + cell.failed
    if cell.result not in ("", "success", "failure") and not cell.message:
        cell.message = f"Buildbot result: {cell.result}"
    return cell


def _property(props: Any, name: str) -> Any:
    value = (props or {}).get(name)
    return value[0] if isinstance(value, list | tuple) else value


def _cause_and_cache(cell: Cell, build: dict[str, Any], get: Get) -> None:
    """A skipped cell says which need failed and links that cell; a result restored from
    the store (kmatrix_cached) is CACHED."""
    if cell.status == SKIPPED:
        found = NEEDS_FAILED.search(build.get("state_string") or "")
        if found:
            needs = [n.strip() for n in found.group(1).split(",") if n.strip()]
            cell.message = f"skipped: needs failed: {', '.join(needs)}"
            cell.links += [Link(f"cause: {n}", f"#{view.anchor('job', n)}") for n in needs]
    elif cell.status == PASSED and build.get("complete"):
        props = get(("builds", build["buildid"], "properties"))
        if _property(props, "kmatrix_cached"):
            cell.status, cell.message = CACHED, "cached: passed before with the same key"


def add_failing(cells: list[Cell], results: Path, url: str = "") -> None:
    """Red cells list their failing tests with messages, read from the junit.xml the
    build uploaded to the master (<results>/<commit>/<job id>/); every built cell links
    its log, reproduce.sh and junit.xml there, a bench job's also its bench.json, whose
    summary line it shows."""
    from pipeline.report.bench_view import bench_line
    from pipeline.report.benchmarks import read_json
    from pipeline.report.html_report import failing_cases

    for cell in cells:
        if not cell.commit or "/" in cell.commit:
            continue
        folder = results / cell.commit / cell.id
        if cell.status in (FAILED, ERROR):
            cell.failing = failing_cases(folder / "junit.xml", cell.id)
        cell.bench = bench_line(read_json(folder / "bench.json"))
        cell.links += [Link(name, f"{url}{APP_PATH}results/{cell.commit}/{cell.id}/{name}",
                            target="_blank")
                       for name in CELL_FILES if (folder / name).is_file()]


APP_PATH = "plugins/wsgi_dashboards/matrix/"  # where Buildbot mounts this app
CELL_FILES = ("log.txt", "reproduce.sh", "junit.xml", "bench.json")  # linked when there
HISTORY = 12  # results per cell in its history strip
REFRESH_SECONDS = 10  # the page reloads itself this often while builds run or wait
BROKEN = (FAILED, ERROR)


def quick_status(request_build: tuple[dict[str, Any], dict[str, Any] | None]) -> str:
    """A build's status without its test counts (for the history strip)."""
    req, build = request_build
    if build is None:
        return STATUS_OF_RESULT[result_name(req["results"], "cancelled")] \
            if req["complete"] else PENDING
    if not build["complete"]:
        return RUNNING
    return STATUS_OF_RESULT[result_name(build["results"], "exception")]


def branch_cells(get: Get, jobs: list[Any], url: str, stamps: Stamps,
                 revisions: list[str]) -> list[Cell]:
    """Each job's newest build among `revisions` (newest first), carried when it is not
    the head's, with the job's history over those commits."""
    cells: dict[str, Cell] = {}
    history: dict[str, list[tuple[str, str]]] = {job.id: [] for job in jobs}
    for revision in revisions:
        newest = newest_builds(get, stamps.buildsets(revision))
        for job in jobs:
            if job.id not in newest:
                continue
            if job.id not in cells:
                cell = job_cell(job, newest[job.id], get, url)
                cell.commit, cell.carried = revision, revision != revisions[0]
                cells[job.id] = cell
            if len(history[job.id]) < HISTORY:
                history[job.id].append((quick_status(newest[job.id]), revision))
    absent = f"not built in the branch's last {len(revisions)} built commits"
    for job in jobs:
        if job.id not in cells:
            cells[job.id] = job_cell(job, None, get, url)
            cells[job.id].message = absent
        cells[job.id].history = history[job.id]
    return [cells[job.id] for job in jobs]


def first_broken(history: list[tuple[str, str]]) -> str | None:
    """The oldest commit of the run of failures the newest result belongs to."""
    found = None
    for status, commit in history:
        if status not in BROKEN:
            break
        found = commit
    return found


def add_broken_since(get: Get, cells: list[Cell]) -> None:
    """Red cells say since which commit they are red ("abc1234567: subject")."""
    from buildbot.data import resultspec

    firsts = {c.id: first_broken(c.history) for c in cells if c.status in BROKEN}
    wanted = sorted({r for r in firsts.values() if r})
    if not wanted:
        return
    subjects = {c["revision"]: (c.get("comments") or "").strip().split("\n")[0]
                for c in get(("changes",), filters=[
                    resultspec.Filter("revision", "eq", wanted)])}
    for cell in cells:
        revision = firsts.get(cell.id)
        if revision:
            cell.broken_since = f"{revision[:10]}: {subjects.get(revision, '')}".rstrip(": ")


def branch_state(get: Get, jobs: list[Any], url: str, branch: str,
                 results: Path) -> dict[str, Any]:
    """What /api/branch/NAME answers: the head, the branch's status and every cell (red
    ones with their failing tests)."""
    stamps = Stamps.load(get)
    revisions = stamps.of_branch(branch)
    cells = branch_cells(get, jobs, url, stamps, revisions) if revisions else []
    add_failing(cells, results, url)
    add_broken_since(get, cells)
    return {"branch": branch, "head": revisions[0] if revisions else None,
            "status": commit_status(cells),
            "cells": [{"job": c.id, "status": c.status, "result": c.result,
                       "commit": c.commit or None, "carried": c.carried,
                       "passed": c.passed, "failed": c.failed, "message": c.message,
                       "failing": [{"name": f.name, "message": f.message}
                                   for f in c.failing],
                       "history": [{"status": st, "commit": rev} for st, rev in c.history],
                       "broken_since": c.broken_since or None, "bench": c.bench or None}
                      for c in cells]}


def _when(value: Any) -> float | None:
    if isinstance(value, datetime):
        return value.timestamp()
    return float(value) if isinstance(value, int | float) else None


def age(seconds: float) -> str:
    """'just now', '5 min ago', '3 h ago', '2 days ago'."""
    for unit, size in (("day", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            count = int(seconds // size)
            return f"{count} {unit}{'s' if unit == 'day' and count > 1 else ''} ago"
    return "just now"


def commits_strip(get: Get, commits: list[dict[str, Any]], now: float
                  ) -> list[dict[str, Any]]:
    """Each recent commit with its subject, author, age and a status summary of its
    builds (passed / failed / skipped / running)."""
    from buildbot.data import resultspec

    if not commits:
        return []
    revisions = [c["revision"] for c in commits]
    changes = {c["revision"]: c for c in get(("changes",), filters=[
        resultspec.Filter("revision", "eq", revisions)])}
    requests = requests_of(get, [b for c in commits for b in c["bsids"]])
    for commit in commits:
        change = changes.get(commit["revision"]) or {}
        when = _when(change.get("when_timestamp"))
        commit.update(subject=(change.get("comments") or "").strip().split("\n")[0],
                      author=(change.get("author") or "").split(" <")[0],
                      age=age(max(0.0, now - when)) if when else "")
        counts = dict.fromkeys(("passed", "failed", "skipped", "running"), 0)
        for req in requests:
            if req["buildsetid"] not in commit["bsids"]:
                continue
            word = "running" if not req["complete"] else {
                0: "passed", 1: "passed", 3: "skipped"}.get(req["results"], "failed")
            counts[word] += 1
        commit["counts"] = counts
    return commits


def page(get: Get, jobs: list[Any], url: str, branch: str, revision_arg: str,
         results: Path) -> dict[str, Any]:
    """The template's context for a branch or revision prefix."""
    stamps = Stamps.load(get)
    if not branch and not revision_arg and stamps.rows:
        branch = stamps.rows[0][2] or ""  # opened bare: the state of the newest build's branch
    target = stamps.pick(branch, revision_arg)
    revisions = stamps.of_branch(branch) if branch and not revision_arg else []
    context: dict[str, Any] = {
        "branches": stamps.branches(), "branch": branch, "revision_arg": revision_arg,
        "revision": target, "commit_branch": None,
        "recent": commits_strip(get, stamps.recent(branch if revisions else ""), time.time()),
        "status": ABSENT, "table": view.matrix([]), "branch_mode": bool(revisions),
        "failing_cells": [],
    }
    context["live"] = any(c["counts"]["running"] for c in context["recent"])
    if target is None:
        return context
    if revisions:  # the branch's state: cells carried forward from older commits
        cells = branch_cells(get, jobs, url, stamps, revisions)
        add_broken_since(get, cells)
    else:
        newest = newest_builds(get, stamps.buildsets(target))
        cells = [job_cell(job, newest.get(job.id), get, url) for job in jobs]
        for cell in cells:
            cell.commit = target if cell.status != ABSENT else ""
    add_failing(cells, results, url)
    context.update(commit_branch=stamps.branch_of(target), status=commit_status(cells),
                   table=view.matrix(cells), failing_cells=[c for c in cells if c.failing],
                   live=context["live"] or any(c.status in (RUNNING, PENDING) for c in cells))
    return context


def embedded(url: str) -> str:
    """What Buildbot's UI fetches (axios asks for JSON) to show under #/matrix: the page in
    a frame, because the UI inserts HTML without running it: no refresh, and its `#` and
    `?revision=` links would change the UI's own route."""
    src = html.escape(f"{url}{APP_PATH}index.html", quote=True)
    return (f'<iframe class="kmatrix-frame" src="{src}" title="kmatrix matrix" '
            'style="border: 0; width: 100%; height: calc(100vh - 70px)"></iframe>')


def create_app(jobs: list[Any], settings: Any) -> Flask:
    """The Flask app; Buildbot sets app.buildbot_api (dataGet) when it mounts it."""
    app = Flask("kmatrix_matrix")
    artifacts_dir = Path(settings.basedir) / "artifacts"
    results_dir = Path(settings.results)

    def get(path: tuple[Any, ...], **kwargs: Any) -> Any:
        return app.buildbot_api.dataGet(path, **kwargs)

    @app.route("/")
    @app.route("/index.html")
    def index() -> str:
        if "application/json" in request.headers.get("Accept", ""):
            return embedded(settings.www_url)
        context = page(get, jobs, settings.www_url, request.args.get("branch", "").strip(),
                       request.args.get("revision", "").strip(), results_dir)
        return view.render(TEMPLATE, refresh_seconds=REFRESH_SECONDS, **context)

    @app.route("/api/branch/<path:name>")
    def api_branch(name: str) -> Any:
        state = branch_state(get, jobs, settings.www_url, name, results_dir)
        return jsonify(state), 200 if state["head"] else 404

    @app.route("/artifacts/<int:buildid>/<name>")
    def artifact(buildid: int, name: str) -> Any:
        return send_from_directory(artifacts_dir / str(buildid), name,
                                   mimetype="text/plain" if not name.endswith(".xml")
                                   else "application/xml")

    @app.route("/results/<revision>/<path:path>")
    def result_file(revision: str, path: str) -> Any:
        if "/" in revision or revision.startswith("."):
            abort(404)
        return send_from_directory(results_dir / revision, path)

    return app
