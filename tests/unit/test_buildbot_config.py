"""Config generation from a matrix: builders, tags, change filtering, force choices."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.buildbot import selection
from pipeline.model.expand import expand
from pipeline.model.matrix import load_matrix_text

MATRIX = """\
version: 1
kernels:
  "6.1": {suite: bookworm}
  "6.12": {suite: trixie}
features:
  default: {}
  userspace: {no-default-features: true, features: [userspace]}
jobs:
  kmod-build:
    over: [kernel]
    image: kbuild
    inputs: ["kernel/**"]
    run: make
  crate-test:
    over: [features]
    image: rust
    inputs: ["userspace/**"]
    run: cargo test
  vm-test:
    over: [kernel]
    image: vm
    needs: [kmod-build, crate-test]
    inputs: ["tests/vm/**"]
    run: boot
  docs:
    image: rust
    run: "true"
"""

LOCK = Path(__file__).resolve().parents[2] / "matrix.lock"


def _jobs():
    return expand(load_matrix_text(MATRIX))


def test_file_globs():
    assert selection.file_matches("kernel/vexfs.c", ["kernel/**"])
    assert selection.file_matches("kernel/include/uapi/x.h", ["kernel/**"])
    assert not selection.file_matches("userspace/src/lib.rs", ["kernel/**"])
    assert selection.file_matches("./userspace/src/abi.rs", ["userspace/src/abi*"])


def test_kernel_change_selects_kernel_builders_their_dependents_and_needs():
    jobs = _jobs()
    names = selection.builders_for_files(jobs, ["kernel/vexfs.c"])
    # kmod-build for both kernels, the vm tests needing them, their crate-test needs,
    # and `docs` (no inputs: every change)
    assert names == ["kmod-build/6.1", "kmod-build/6.12", "crate-test/default",
                     "crate-test/userspace", "vm-test/6.1", "vm-test/6.12", "docs"]


def test_userspace_change_never_rebuilds_kernel_modules_without_a_dependent():
    jobs = [j for j in _jobs() if j.name != "vm-test"]
    names = selection.builders_for_files(jobs, ["userspace/src/lib.rs"])
    assert names == ["crate-test/default", "crate-test/userspace", "docs"]


def test_change_without_files_builds_everything_and_importance():
    jobs = _jobs()
    assert selection.builders_for_files(jobs, []) == [j.id for j in jobs]
    only_inputs = [j for j in jobs if j.spec.inputs]
    assert not selection.important(only_inputs, ["README.md"])
    assert selection.important(only_inputs, ["tests/vm/boot.sh"])


def test_force_selection():
    jobs = _jobs()
    assert selection.builders_for_force(jobs, kernel="6.1") == [
        "kmod-build/6.1", "crate-test/default", "crate-test/userspace", "vm-test/6.1"]
    assert selection.builders_for_force(jobs, features="userspace") == ["crate-test/userspace"]
    assert selection.builders_for_force(jobs, job_name="kmod-build") == [
        "kmod-build/6.1", "kmod-build/6.12"]
    assert selection.builders_for_force(jobs, kernel="6.12", job_name="kmod-build") == [
        "kmod-build/6.12"]
    assert selection.levels(jobs)["vm-test/6.1"] == 1
    assert selection.levels(jobs)["kmod-build/6.1"] == 0


@pytest.fixture
def config(tmp_path, monkeypatch):
    pytest.importorskip("buildbot")
    from pipeline.buildbot.config import build_config

    project = tmp_path / "project"
    project.mkdir()
    (project / "matrix.yml").write_text(MATRIX)
    basedir = project / ".buildbot"
    basedir.mkdir()
    (basedir / "kmatrix.yml").write_text("www_port: 18099\npb_port: 19099\n")
    for var in ("KMATRIX_BB_WWW_PORT", "KMATRIX_BB_PB_PORT", "KMATRIX_BB_BIND"):
        monkeypatch.delenv(var, raising=False)
    return build_config(basedir=basedir, matrix=project / "matrix.yml")


def test_builders_and_tags(config):
    builders = {b.name: b for b in config["builders"]}
    assert list(builders) == [j.id for j in _jobs()]
    assert builders["kmod-build/6.12"].tags == ["kmod-build", "k:6.12"]
    assert builders["crate-test/userspace"].tags == ["crate-test", "f:userspace"]
    assert builders["vm-test/6.1"].tags == ["vm-test", "k:6.1", "needs"]
    assert builders["docs"].tags == ["docs"]
    # the console view gives a one-builder tag 50 px: kernel tags must not be cut
    assert max(len(t) for b in builders.values() for t in b.tags if t.startswith("k:")) <= 8
    assert all(b.workernames == ["local"] for b in builders.values())
    assert all(b.canStartBuild is not None for b in builders.values())
    prepare = ["clean out", "clean needs", "clean cache", "checkout"]
    publish = ["upload results", "upload to the store", "publish", "report"]
    assert step_names(builders["vm-test/6.1"]) == [
        "needs", *prepare, "needs artifacts", "key", "cache lookup", "job", *publish]
    assert step_names(builders["kmod-build/6.1"]) == [
        *prepare, "key", "cache lookup", "job", *publish]


def step_names(builder) -> list[str]:
    return [step.buildStep().name for step in builder.factory.steps]


def test_schedulers_filter_by_inputs_and_force_choices(config):
    scheds = {s.name: s for s in config["schedulers"]}
    push = scheds["kmatrix-push"]

    class Change:
        files = ["kernel/vexfs.c"]

    assert push.is_important(Change())
    assert push.matrix_jobs and push.builderNames == [j.id for j in _jobs()]
    Change.files = ["README.md"]
    assert push.is_important(Change())  # `docs` declares no inputs: every change
    force = scheds["kmatrix-force"]
    choices = force.matrix_choices
    assert choices["kernel"] == ["all", "6.1", "6.12"]
    assert choices["features"] == ["all", "default", "userspace"]
    assert choices["job"] == ["all", "kmod-build", "crate-test", "vm-test", "docs"]


def test_loopback_defaults(config):
    assert config["www"]["port"] == "tcp:18099:interface=127.0.0.1"
    assert config["protocols"]["pb"]["port"] == "tcp:19099:interface=127.0.0.1"
    assert config["www"]["change_hook_dialects"] == {"poller": {"allowed": ["kmatrix"]}}
    assert config["change_source"][0].name == "kmatrix"
    assert config["db"]["db_url"] == "sqlite:///state.sqlite"
    assert {"waterfall_view", "console_view", "grid_view", "wsgi_dashboards"} <= set(
        config["www"]["plugins"])


def test_settings_passwords_never_from_the_file(tmp_path):
    from pipeline.buildbot.settings import load_settings
    from pipeline.errors import InputError

    (tmp_path / "kmatrix.yml").write_text("workers:\n  - {name: big, password: x}\n")
    with pytest.raises(InputError):
        load_settings(tmp_path, env={})
    (tmp_path / "kmatrix.yml").write_text(
        "local_worker: false\ndb_url: postgresql://bb@db/bb\nworkers:\n  - {name: big-1}\n")
    settings = load_settings(tmp_path, env={"KMATRIX_BB_WORKER_PASSWORD_BIG_1": "s3cret",
                                             "KMATRIX_BB_BIND": "0.0.0.0"})
    assert [(w.name, w.password) for w in settings.workers] == [("big-1", "s3cret")]
    assert settings.db_url == "postgresql://bb@db/bb" and settings.bind == "0.0.0.0"


# --- the Matrix dashboard on a fake data API (the run report's renderer) -----------------

REV = "a1b2c3d4e5f6a7b8c9d0a1b2c3d4e5f6a7b8c9d0"


class FakeApi:
    """Buildbot's dataGet over a few canned builds of one commit."""

    def __init__(self) -> None:
        jobs = ["kmod-build/6.1", "kmod-build/6.12", "crate-test/default", "vm-test/6.1",
                "vm-test/6.12", "docs"]
        self.builders = [{"builderid": i, "name": n} for i, n in enumerate(jobs, 1)]
        self.buildsets = [{"bsid": 7, "sourcestamps": [{"revision": REV, "branch": "main"}]}]
        # builderid -> (request complete, request results, build or None)
        self.requests = [
            {"buildrequestid": 10 + b, "buildsetid": 7, "builderid": b, "complete": c,
             "results": r} for b, c, r in ((1, True, 0), (2, True, 2), (3, True, 1),
                                           (4, False, None), (5, False, None))]
        self.builds = [
            {"buildid": 100 + b, "buildrequestid": 10 + b, "builderid": b, "number": 3,
             "complete": c, "results": r, "started_at": 1000.0, "complete_at": 1041.5}
            for b, c, r in ((1, True, 0), (2, True, 2), (3, True, 1), (4, False, None))]
        self.tests = {101: (1, 0), 102: (0, 1), 103: (5, 0), 104: (2, 0)}
        self.properties: dict[int, dict[str, tuple[object, str]]] = {}
        self.changes: list[dict[str, object]] = []

    def dataGet(self, path, filters=(), **kwargs):
        if path[0] == "builds" and len(path) == 3 and path[2] == "properties":
            return dict(self.properties.get(path[1], {}))
        if path[0] == "builds" and len(path) == 3:
            passed, failed = self.tests.get(path[1], (0, 0))
            return [{"tests_passed": passed, "tests_failed": failed}]
        rows = {"buildsets": self.buildsets, "builders": self.builders,
                "buildrequests": self.requests, "builds": self.builds,
                "changes": self.changes}[path[0]]
        for f in filters:
            # as Buildbot's endpoint: a buildsetid filter of buildrequests uses its first value
            values = f.values[:1] if (path[0], f.field) == ("buildrequests", "buildsetid") \
                else f.values
            rows = [r for r in rows if r[f.field] in values]
        return rows


def dashboard_client(tmp_path, api: FakeApi):
    """The Matrix app over a fake data API, as a Flask test client."""
    pytest.importorskip("flask")
    pytest.importorskip("buildbot")
    from pipeline.buildbot.dashboard import create_app
    from pipeline.buildbot.settings import Settings

    app = create_app(_jobs(), Settings(basedir=tmp_path, www_port=8010))
    app.buildbot_api = api
    return app.test_client()


@pytest.fixture
def dashboard(tmp_path):
    return dashboard_client(tmp_path, FakeApi())


def _cell_attrs(page: str) -> dict[str, dict[str, str]]:
    from tests.unit.test_html_report import Dom

    return {a["data-job"]: a for t, a in Dom(page).elements if t == "td" and "data-job" in a}


def test_dashboard_maps_buildbot_results_onto_the_status_model(dashboard):
    page = dashboard.get("/index.html?branch=main").get_data(as_text=True)
    cells = _cell_attrs(page)
    assert {j: (a["data-status"], a.get("data-result")) for j, a in cells.items()} == {
        "kmod-build/6.1": ("passed", "success"), "kmod-build/6.12": ("failed", "failure"),
        "crate-test/default": ("passed", "warnings"), "vm-test/6.1": ("running", None),
        "vm-test/6.12": ("pending", None), "crate-test/userspace": ("absent", None),
        "docs": ("absent", None)}
    assert cells["kmod-build/6.12"]["data-failed"] == "1"
    assert f'<code id="revision">{REV}</code>' in page
    assert 'href="http://127.0.0.1:8010/#/builders/2/builds/3" target="_top"' in page


def test_dashboard_draws_the_report_matrix(dashboard):
    from tests.unit.test_html_report import Dom

    page = dashboard.get(f"/?revision={REV[:8]}").get_data(as_text=True)
    # the report's tables: kernels x job kinds, feature sets x job kinds, other jobs
    assert '<table class="matrix" data-axis="kernel">' in page
    assert '<table class="matrix" data-axis="features">' in page
    assert 'id="grid-other"' in page
    cell = page.split('data-job="crate-test/default"')[1].split("</td>")[0]
    text = Dom(cell).all_text()
    assert "passed" in text and "5 /5 tests passed" in text and "41.5 s" in text
    assert "Buildbot result: warnings" in text
    assert "not built for this commit" in page.split('data-job="docs"')[1].split("</td>")[0]
    assert ".kmatrix .s-failed" in page and "<script" not in page


def test_dashboard_without_builds(dashboard):
    dashboard.application.buildbot_api.buildsets = []
    page = dashboard.get("/").get_data(as_text=True)
    assert 'id="empty"' in page and "No builds yet." in page


def test_shipped_matrix_userspace_commit_builds_crates_and_the_vm_tests() -> None:
    """What docs/BUILDBOT.md says a userspace-only push builds with the shipped matrix."""
    from pipeline.model.matrix import load_matrix

    jobs = expand(load_matrix(LOCK.parent / "matrix.yml"))
    names = set(selection.builders_for_files(jobs, ["userspace/src/lib.rs"]))
    kinds = {n.split("/")[0] for n in names}
    # the VM tests take userspace/** (vexctl runs in the VM), so they and their needs build
    assert {"crate-build", "crate-test", "vexctl-static", "vm-test", "kmod-build"} <= kinds
    assert "vm-test/6.1" in names and "kmod-build/6.1" in names
    kernel_only = set(selection.builders_for_files(jobs, ["kernel/vexfs_main.c"]))
    assert not {n for n in kernel_only if n.startswith(("crate-build/", "crate-test/"))}
