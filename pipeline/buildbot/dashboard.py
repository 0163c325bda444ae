"""The "Matrix" page (buildbot-wsgi-dashboards, Flask + Jinja2).

For one commit (?revision=PREFIX) or the newest built commit of a branch (?branch=NAME),
a table of axis values (kernels, feature sets) x job kinds; each cell is coloured by the
status of that builder's newest build for the commit, with pass/fail test counts from the
test-results API and a link to the build. Also serves kept build files (/artifacts/...)
and the per-revision results directories (/results/...).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from flask import Flask, abort, render_template_string, request, send_from_directory

STATUS = ["success", "warnings", "failure", "skipped", "exception", "retry", "cancelled"]

PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>kmatrix: matrix</title>
<style>
body { font-family: sans-serif; margin: 1em; }
table.matrix { border-collapse: collapse; }
table.matrix th, table.matrix td {
  border: 1px solid #999; padding: .4em .7em; text-align: center; }
td.cell a { color: inherit; text-decoration: none; display: block; }
td.success { background: #8d4; } td.warnings { background: #fa3; }
td.failure { background: #e44; color: #fff; } td.exception { background: #c6c; }
td.cancelled, td.skipped, td.retry { background: #ccc; }
td.running { background: #fd6; } td.pending { background: #eee; }
td.absent { background: #fff; color: #aaa; }
.counts { font-size: 85%; } form { margin-bottom: 1em; } code { font-size: 90%; }
</style></head><body>
<form method="get">
  Branch <select name="branch"><option value="">(newest commit)</option>
  {% for b in branches %}
  <option {% if b == branch %}selected{% endif %}>{{ b }}</option>
  {% endfor %}
  </select>
  or commit <input name="revision" value="{{ revision_arg }}" size="12">
  <button type="submit">Show</button>
</form>
{% if revision %}
<p id="commit">Commit <code id="revision">{{ revision }}</code>
{% if commit_branch %} on <b>{{ commit_branch }}</b>{% endif %}
{% if comments %} &mdash; {{ comments }}{% endif %}</p>
<table class="matrix" id="matrix">
<tr><th></th>{% for name in job_names %}<th>{{ name }}</th>{% endfor %}</tr>
{% for row in rows %}
<tr><th class="axis">{{ row.label }}</th>
{% for name in job_names %}{% set cell = row.cells.get(name) %}
{% if cell %}
<td class="cell {{ cell.status }}" data-job="{{ cell.job }}" data-status="{{ cell.status }}"
    data-passed="{{ cell.passed }}" data-failed="{{ cell.failed }}">
{% if cell.url %}<a href="{{ cell.url }}" target="_top">{% endif %}
<div class="status">{{ cell.status }}</div>
{% if cell.passed or cell.failed %}
<div class="counts">{{ cell.passed }} passed / {{ cell.failed }} failed</div>
{% endif %}
{% if cell.url %}</a>{% endif %}
</td>
{% else %}<td class="absent"></td>{% endif %}
{% endfor %}</tr>
{% endfor %}
</table>
{% else %}
<p id="empty">No builds yet{% if revision_arg or branch %} for this selection{% endif %}.</p>
{% endif %}
{% if recent %}<h4>Recent commits</h4><ul>
{% for r in recent %}
<li><a href="?revision={{ r.revision }}"><code>{{ r.revision[:12] }}</code></a>
{{ r.branch or '' }}</li>
{% endfor %}
</ul>{% endif %}
</body></html>
"""


def rows_of(jobs: list[Any], kernels: list[str], features: list[str]) -> list[dict[str, Any]]:
    """Table rows: one per axis-value combination; kernels first, then feature sets."""
    rows: dict[tuple[str, ...], dict[str, Any]] = {}

    def order(key: tuple[str, ...]) -> tuple[int, int]:
        kind = key[0]
        if kind == "kernel":
            return (0, kernels.index(key[1]) if key[1] in kernels else 99)
        if kind == "features":
            return (1, features.index(key[1]) if key[1] in features else 99)
        return (2, 0)

    for job in jobs:
        axes = job.axes()
        key = tuple(x for pair in axes.items() for x in pair) or ("",)
        label = " / ".join(f"{v}" if a == "kernel" else f"{v} (features)"
                           for a, v in axes.items()) or "-"
        rows.setdefault(key, {"label": label, "jobs": {}})["jobs"][job.name] = job.id
    return [rows[k] for k in sorted(rows, key=order)]


def create_app(jobs: list[Any], matrix: Any, settings: Any) -> Flask:
    """The Flask app; Buildbot sets app.buildbot_api (dataGet) when it mounts it."""
    app = Flask("kmatrix_matrix")
    job_names = list(dict.fromkeys(j.name for j in jobs))
    table = rows_of(jobs, list(matrix.kernels), list(matrix.features))
    artifacts_dir = Path(settings.basedir) / "artifacts"
    results_dir = Path(settings.results)
    url = settings.www_url

    def get(path: tuple[Any, ...], **kwargs: Any) -> Any:
        return app.buildbot_api.dataGet(path, **kwargs)

    @app.route("/")
    @app.route("/index.html")
    def index() -> str:
        from buildbot.data import resultspec

        branch = request.args.get("branch", "").strip()
        revision_arg = request.args.get("revision", "").strip()
        buildsets = get(("buildsets",), order=["-bsid"], limit=500)
        stamps = []
        for bs in buildsets:
            for ss in bs.get("sourcestamps") or []:
                if ss.get("revision"):
                    stamps.append((bs["bsid"], ss["revision"], ss.get("branch")))
        branches = sorted({b for _, _, b in stamps if b})
        target = None
        for _, rev, br in stamps:
            if (revision_arg and rev.startswith(revision_arg)) or \
                    (not revision_arg and (not branch or br == branch)):
                target = rev
                break
        recent: list[dict[str, Any]] = []
        for _, rev, br in stamps:
            if rev not in [r["revision"] for r in recent] and len(recent) < 15:
                recent.append({"revision": rev, "branch": br})
        context: dict[str, Any] = {"branches": branches, "branch": branch,
                                   "revision_arg": revision_arg, "revision": target,
                                   "job_names": job_names, "rows": [], "recent": recent,
                                   "commit_branch": None, "comments": ""}
        if target is None:
            return render_template_string(PAGE, **context)
        bsids = [bsid for bsid, rev, _ in stamps if rev == target]
        context["commit_branch"] = next((br for _, rev, br in stamps if rev == target), None)
        builders = {b["builderid"]: b["name"] for b in get(("builders",))}
        requests = get(("buildrequests",),
                       filters=[resultspec.Filter("buildsetid", "eq", bsids)])
        newest_request: dict[str, dict[str, Any]] = {}
        for req in sorted(requests, key=lambda r: r["buildrequestid"]):
            newest_request[builders.get(req["builderid"], "")] = req
        builds: dict[int, dict[str, Any]] = {}
        if requests:
            for build in get(("builds",), filters=[resultspec.Filter(
                    "buildrequestid", "eq", [r["buildrequestid"] for r in requests])]):
                old = builds.get(build["buildrequestid"])
                if old is None or build["buildid"] > old["buildid"]:
                    builds[build["buildrequestid"]] = build
        cells: dict[str, dict[str, Any]] = {}
        for name, req in newest_request.items():
            build = builds.get(req["buildrequestid"])
            cell = {"job": name, "status": "pending", "passed": 0, "failed": 0, "url": None}
            if build is not None:
                cell["url"] = f"{url}#/builders/{build['builderid']}/builds/{build['number']}"
                if not build["complete"]:
                    cell["status"] = "running"
                else:
                    results = build["results"]
                    cell["status"] = STATUS[results] if results is not None and \
                        0 <= results < len(STATUS) else "exception"
                for trs in get(("builds", build["buildid"], "test_result_sets")):
                    cell["passed"] += trs.get("tests_passed") or 0
                    cell["failed"] += trs.get("tests_failed") or 0
            elif req["complete"]:
                results = req["results"]
                cell["status"] = STATUS[results] if results is not None and \
                    0 <= results < len(STATUS) else "cancelled"
            cells[name] = cell
        rows = []
        for row in table:
            row_cells = {}
            for job_name, job_id in row["jobs"].items():
                row_cells[job_name] = cells.get(job_id) or {
                    "job": job_id, "status": "not-built", "passed": 0, "failed": 0,
                    "url": None}
            rows.append({"label": row["label"], "cells": row_cells})
        context["rows"] = rows
        return render_template_string(PAGE, **context)

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
