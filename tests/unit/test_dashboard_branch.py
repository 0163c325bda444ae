"""The dashboard's branch state on a fake data API: carried-forward cells, skipped causes,
cache hits, and the JSON endpoint a script asks "is main green on 6.12?"."""

from __future__ import annotations

import time

import pytest

from tests.unit.test_buildbot_config import FakeApi, _cell_attrs, dashboard_client

OLD, NEW, OTHER = "a" * 40, "b" * 40, "c" * 40


class BranchApi(FakeApi):
    """main: OLD built the kernel cells (vm-test/6.12 skipped for its failed need), NEW only
    crate-test/default (cached); `dev` has its own commit."""

    def __init__(self) -> None:
        super().__init__()
        ids = {b["name"]: b["builderid"] for b in self.builders}
        self.buildsets = [
            {"bsid": 9, "sourcestamps": [{"revision": OTHER, "branch": "dev"}]},
            {"bsid": 8, "sourcestamps": [{"revision": NEW, "branch": "main"}]},
            {"bsid": 7, "sourcestamps": [{"revision": OLD, "branch": "main"}]},
        ]
        plan = [  # (buildset, builder, results, state string)
            (7, "kmod-build/6.1", 0, "build successful"),
            (7, "kmod-build/6.12", 2, "failed job"),
            (7, "vm-test/6.1", 0, "build successful"),
            (7, "vm-test/6.12", 3, "skipped: needs failed: kmod-build/6.12 skipped"),
            (7, "crate-test/default", 2, "failed job"),
            (8, "crate-test/default", 0, "build successful"),
            (9, "kmod-build/6.1", 2, "failed job"),
        ]
        self.requests, self.builds = [], []
        for n, (bsid, name, result, state) in enumerate(plan, 1):
            self.requests.append({"buildrequestid": n, "buildsetid": bsid,
                                  "builderid": ids[name], "complete": True,
                                  "results": result})
            self.builds.append({"buildid": 100 + n, "buildrequestid": n,
                                "builderid": ids[name], "number": n, "complete": True,
                                "results": result, "state_string": state,
                                "started_at": 1000.0, "complete_at": 1010.0})
        self.tests = {101: (1, 0), 102: (0, 1), 106: (5, 0)}
        self.properties = {106: {"kmatrix_cached": (True, "kmatrix")}}
        now = time.time()
        self.changes = [
            {"revision": OLD, "author": "Ada <ada@example.org>", "when_timestamp": now - 7200,
             "comments": "kernel: break 6.12\n\nlong text"},
            {"revision": NEW, "author": "Bob <bob@example.org>", "when_timestamp": now - 300,
             "comments": "userspace: tweak"},
        ]


@pytest.fixture
def client(tmp_path):
    return dashboard_client(tmp_path, BranchApi())


def test_branch_json_carries_cells_forward_from_older_commits(client) -> None:
    reply = client.get("/api/branch/main")
    assert reply.status_code == 200
    state = reply.get_json()
    assert state["head"] == NEW and state["status"] == "failed"
    cells = {c["job"]: c for c in state["cells"]}
    assert (cells["crate-test/default"]["status"], cells["crate-test/default"]["commit"],
            cells["crate-test/default"]["carried"]) == ("cached", NEW, False)
    assert (cells["kmod-build/6.12"]["status"], cells["kmod-build/6.12"]["commit"],
            cells["kmod-build/6.12"]["carried"]) == ("failed", OLD, True)
    assert cells["kmod-build/6.1"]["status"] == "passed"  # not dev's failure
    assert cells["vm-test/6.12"]["status"] == "skipped"
    assert cells["vm-test/6.12"]["message"] == "skipped: needs failed: kmod-build/6.12"
    assert cells["crate-test/userspace"]["status"] == "absent"
    assert cells["crate-test/userspace"]["commit"] is None


def test_unknown_branch_is_404_with_an_empty_state(client) -> None:
    reply = client.get("/api/branch/nope")
    assert reply.status_code == 404 and reply.get_json()["cells"] == []


def test_branch_page_marks_carried_cells_and_links_the_cause(client) -> None:
    page = client.get("/index.html?branch=main").get_data(as_text=True)
    cells = _cell_attrs(page)
    assert cells["kmod-build/6.12"]["data-carried"] == "true"
    assert cells["kmod-build/6.12"]["data-commit"] == OLD
    assert "data-carried" not in cells["crate-test/default"]
    assert cells["crate-test/default"]["data-status"] == "cached"
    assert f"carried from <code>{OLD[:10]}</code>" in page
    assert 'href="#x-job-kmod-build-6-12"' in page and "cause: kmod-build/6.12" in page
    # one commit's view stays one commit: nothing carried there
    commit = _cell_attrs(client.get(f"/index.html?revision={NEW[:8]}").get_data(
        as_text=True))
    assert commit["kmod-build/6.12"]["data-status"] == "absent"
    assert "data-carried" not in commit["kmod-build/6.12"]


def test_commits_strip_has_subject_author_age_and_counts(client) -> None:
    from tests.unit.test_html_report import Dom

    page = client.get("/index.html?branch=main").get_data(as_text=True)
    items = {a["data-revision"]: a for t, a in Dom(page).elements
             if t == "li" and "data-revision" in a}
    assert list(items) == [NEW, OLD]  # the branch's commits, newest first; not dev's
    assert "userspace: tweak" in page and "Bob, 5 min ago" in page
    assert "kernel: break 6.12" in page and "long text" not in page and "Ada, 2 h ago" in page
    assert 'data-passed="2"' in page and 'data-failed="2"' in page  # OLD's four builds
    assert 'data-skipped="1"' in page


def test_age_words() -> None:
    from pipeline.buildbot.dashboard import age

    assert [age(s) for s in (5, 61, 7200, 86400, 3 * 86400)] == [
        "just now", "1 min ago", "2 h ago", "1 day ago", "3 days ago"]


def test_red_cells_list_their_failing_tests_from_the_uploaded_junit(client, tmp_path) -> None:
    job = tmp_path / "results" / OLD / "kmod-build" / "6.12"
    job.mkdir(parents=True)
    (job / "junit.xml").write_text(
        '<testsuite name="kmod-build/6.12" tests="1" failures="1">'
        '<testcase classname="kmod-build/6.12" name="build">'
        '<failure message="vexfs_main.c:12: error: expected \';\'">make: *** [all] Error 2'
        '</failure></testcase></testsuite>')
    state = client.get("/api/branch/main").get_json()
    cells = {c["job"]: c for c in state["cells"]}
    assert cells["kmod-build/6.12"]["failing"] == [
        {"name": "kmod-build/6.12.build", "message": "vexfs_main.c:12: error: expected ';'"}]
    assert cells["crate-test/default"]["failing"] == []
    (job / "log.txt").write_text("make: *** [all] Error 2\n")
    page = client.get("/index.html?branch=main").get_data(as_text=True)
    assert '<section id="failures">' in page and "make: *** [all] Error 2" in page
    log = f"http://127.0.0.1:8010/plugins/wsgi_dashboards/matrix/results/{OLD}/kmod-build/6.12/"
    assert f'href="{log}log.txt"' in page and f'href="{log}junit.xml"' in page
    assert f'href="{log}reproduce.sh"' not in page  # not uploaded: not linked
    assert client.get(f"/results/{OLD}/kmod-build/6.12/log.txt").data.startswith(b"make:")
    assert "vexfs_main.c:12: error: expected &#39;;&#39;" in page


def test_history_strip_and_broken_since(client) -> None:
    cells = {c["job"]: c for c in client.get("/api/branch/main").get_json()["cells"]}
    assert cells["crate-test/default"]["history"] == [
        {"status": "passed", "commit": NEW}, {"status": "failed", "commit": OLD}]
    assert cells["crate-test/default"]["broken_since"] is None  # fixed by NEW
    assert cells["kmod-build/6.12"]["history"] == [{"status": "failed", "commit": OLD}]
    assert cells["kmod-build/6.12"]["broken_since"] == f"{OLD[:10]}: kernel: break 6.12"
    page = client.get("/index.html?branch=main").get_data(as_text=True)
    assert f"broken since <code>{OLD[:10]}: kernel: break 6.12</code>" in page
    assert f'href="?revision={OLD}" title="{OLD[:10]}: failed" data-status="failed"' in page


def test_first_broken_is_the_start_of_the_newest_run_of_failures() -> None:
    from pipeline.buildbot.dashboard import first_broken

    assert first_broken([("failed", "c"), ("error", "b"), ("passed", "a")]) == "b"
    assert first_broken([("failed", "c"), ("passed", "b"), ("failed", "a")]) == "c"
    assert first_broken([("passed", "c"), ("failed", "b")]) is None


def test_forced_builds_are_marked_in_the_commits_strip(tmp_path) -> None:
    api = BranchApi()
    api.buildsets[1]["reason"] = "forced by ada: re-run"
    page = dashboard_client(tmp_path, api).get("/?branch=main").get_data(as_text=True)
    forced = page.split(f'data-revision="{NEW}"')[1].split("</li>")[0]
    assert 'class="forced' in forced
    assert 'class="forced' not in page.split(f'data-revision="{OLD}"')[1].split("</li>")[0]


def test_the_page_refreshes_itself_only_while_builds_run(tmp_path) -> None:
    api = BranchApi()
    idle = dashboard_client(tmp_path, api).get("/?branch=main").get_data(as_text=True)
    assert 'data-live="0"' in idle and 'http-equiv="refresh"' not in idle
    api.builds[5].update(complete=False, results=None)  # crate-test/default on NEW runs
    api.requests[5].update(complete=False, results=None)
    live = dashboard_client(tmp_path, api).get("/?branch=main").get_data(as_text=True)
    assert 'data-live="1"' in live and 'http-equiv="refresh" content="10"' in live
    assert 'data-status="running"' in live


def test_the_bare_page_shows_the_newest_builds_branch(client) -> None:
    page = client.get("/").get_data(as_text=True)
    assert 'branch <span class="mono">dev</span>' in page and f"{OTHER}" in page


def test_buildbot_ui_gets_the_page_in_a_frame(client) -> None:
    """The UI fetches index.html with axios (Accept: application/json) and inserts it without
    running scripts; a browser (Accept: text/html) or a script gets the page itself."""
    ui = client.get("/index.html", headers={"Accept": "application/json, text/plain, */*"})
    assert ui.get_data(as_text=True).startswith('<iframe class="kmatrix-frame" src="http://')
    page = client.get("/index.html", headers={"Accept": "text/html,application/xhtml+xml"})
    assert '<div class="kmatrix dashboard"' in page.get_data(as_text=True)
