"""GitHub and GitLab without the forges: signed webhooks sent to a real master's change hook
on 127.0.0.1, and a small HTTP server on 127.0.0.1 standing in for the forge's API, which
records the commit statuses Buildbot's reporters post.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("buildbot", reason="pip install -e '.[buildbot]'")

from tests.buildbot_harness import MasterHarness
from tests.conftest import ROOT, docker_available

MATRIX = """\
version: 1
defaults: {timeout: 300, image-base: mmdebstrap}
kernels:
  "6.1": {suite: bookworm}
features:
  default: {}
jobs:
  check:
    over: [kernel]
    image: kbuild
    inputs: ["status.txt"]
    steps:
      - name: check
        run: grep -qx ok "$SRC/status.txt"
"""
SECRET, TOKEN = "s3cret-webhook-key-0123456789", "forge-token-abc"
PROJECT, PROJECT_ID = "acme/vexfs", 42
WHEN = "2026-12-01T10:00:00+00:00"
DASHBOARD = "plugins/wsgi_dashboards/matrix/index.html"


class FakeForge(ThreadingHTTPServer):
    """The bits of GitHub's and GitLab's REST APIs that Buildbot calls; records POSTs."""

    def __init__(self) -> None:
        self.posted: list[tuple[str, dict[str, Any]]] = []
        self.lock = threading.Lock()
        super().__init__(("127.0.0.1", 0), _ForgeHandler)
        threading.Thread(target=self.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def statuses(self, sha: str) -> list[dict[str, Any]]:
        with self.lock:
            return [body for path, body in self.posted if path.endswith(f"/statuses/{sha}")]


class _ForgeHandler(BaseHTTPRequestHandler):
    server: FakeForge
    protocol_version = "HTTP/1.1"  # keep-alive, as the forges (Buildbot pools connections)

    def _reply(self, code: int, data: Any) -> None:
        body = json.dumps(data).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        if self.path.startswith(f"/repos/{PROJECT}/commits/"):
            self._reply(200, {"commit": {"message": "a pull request commit"}})
        elif self.path == f"/repos/{PROJECT}/pulls/7/files":
            self._reply(200, [{"filename": "status.txt"}])
        elif self.path == "/api/v4/projects/acme%2Fvexfs":
            self._reply(200, {"id": PROJECT_ID})
        else:
            self._reply(404, {"message": "not found"})

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])) or b"{}")
        with self.server.lock:
            self.server.posted.append((self.path, body))
        self._reply(201, {})

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def forges():
    """A fresh fake forge per call (each flow's statuses apart)."""
    servers: list[FakeForge] = []

    def make() -> FakeForge:
        servers.append(FakeForge())
        return servers[-1]

    yield make
    for server in servers:
        server.shutdown()
        server.server_close()


def _master(tmp: Path, forge: FakeForge, kind: str, statuses: str) -> MasterHarness:
    (tmp / "secret").parent.mkdir(parents=True, exist_ok=True)
    (tmp / "secret").write_text(SECRET + "\n")
    (tmp / "token").write_text(TOKEN + "\n")
    settings = (f"forge:\n  kind: {kind}\n  secret_file: {tmp / 'secret'}\n"
                f"  token_file: {tmp / 'token'}\n  api_url: {forge.url}\n"
                f"  statuses: {statuses}\n")
    master = MasterHarness(tmp / "bb", ROOT, MATRIX, settings=settings)
    master.commit_and_push({"status.txt": "ok\n"}, "status: ok")
    return master


def _post(master: MasterHarness, dialect: str, payload: dict[str, Any],
          headers: dict[str, str]) -> int:
    body = json.dumps(payload).encode()
    request = urllib.request.Request(f"{master.url}change_hook/{dialect}", data=body,
                                     headers={"Content-Type": "application/json", **headers})
    try:
        with urllib.request.urlopen(request, timeout=30) as reply:
            return reply.status
    except urllib.error.HTTPError as error:
        return error.code


def _github(master: MasterHarness, event: str, payload: dict[str, Any], secret: str) -> int:
    body = json.dumps(payload).encode()
    signature = hmac.new(secret.encode(), body, hashlib.sha1).hexdigest()
    return _post(master, "github", payload, {"X-GitHub-Event": event,
                                             "X-Hub-Signature": f"sha1={signature}"})


def _commit(master: MasterHarness, sha: str, files: list[str]) -> dict[str, Any]:
    author = {"name": "Ada", "email": "ada@example.org"}
    return {"id": sha, "message": master.git("log", "-1", "--format=%s", sha),
            "timestamp": WHEN, "url": f"https://forge.example/{PROJECT}/commit/{sha}",
            "author": author, "committer": author, "added": [], "modified": files,
            "removed": [], "distinct": True}


def _wait_statuses(master: MasterHarness, forge: FakeForge, sha: str, context: str,
                   final: str) -> list[dict[str, Any]]:
    def done() -> list[dict[str, Any]] | None:
        mine = [s for s in forge.statuses(sha) if s.get("context", s.get("name")) == context]
        return mine if mine and mine[-1]["state"] == final else None

    return master.wait_for(done, 300, f"status {final!r} of {context} on {sha[:10]}", 0.5)


def _push_branch(master: MasterHarness, ref: str, text: str, message: str) -> str:
    """A commit on a side branch, pushed to origin as `ref`; main is left as it was."""
    master.git("checkout", "-q", "-b", f"side-{ref.replace('/', '-')}")
    (master.project / "status.txt").write_text(text)
    master.git("commit", "-qam", message)
    sha = master.git("rev-parse", "HEAD")
    master.git("push", "-q", "origin", f"HEAD:{ref}")
    master.git("checkout", "-q", "main")
    return sha


@pytest.mark.docker
@pytest.mark.slow
def test_forge_webhooks_and_statuses(forges, tmp_path) -> None:
    if not docker_available():
        pytest.skip("Docker is not available")
    _github_flow(forges(), tmp_path / "github")
    _gitlab_flow(forges(), tmp_path / "gitlab")


def _github_flow(forge: FakeForge, tmp: Path) -> None:
    master = _master(tmp, forge, "github", "both")
    try:
        master.start(poller=False)
        head = master.git("rev-parse", "HEAD")
        repo = {"name": "vexfs", "full_name": PROJECT,
                "html_url": f"https://github.com/{PROJECT}"}
        push = {"ref": "refs/heads/main", "before": "0" * 40, "after": head,
                "repository": repo, "pusher": {"name": "ada"},
                "head_commit": _commit(master, head, ["status.txt"]),
                "commits": [_commit(master, head, ["status.txt"])]}
        assert _github(master, "push", push, "wrong-secret-0123456789") == 400
        assert master.api("buildsets")["buildsets"] == [], "a wrong signature started builds"
        assert _github(master, "push", push, SECRET) == 200
        summary = _wait_statuses(master, forge, head, "kmatrix", "success")
        assert summary[0]["state"] == "pending"
        assert summary[-1]["target_url"] == f"{master.url}{DASHBOARD}?branch=main"
        assert summary[-1]["description"] == "kmatrix: 1 passed"
        cell = _wait_statuses(master, forge, head, "kmatrix/check/6.1", "success")
        assert cell[0]["state"] == "pending" and "/builds/" in cell[-1]["target_url"]

        pr_sha = _push_branch(master, "refs/pull/7/head", "broken\n", "status: broken")
        pull = {"action": "opened", "number": 7, "repository": repo,
                "sender": {"login": "bob"},
                "pull_request": {"title": "Break it", "body": "", "commits": 1,
                                 "created_at": WHEN, "head": {"sha": pr_sha},
                                 "base": {"ref": "main", "repo": {"full_name": PROJECT}},
                                 "_links": {"html": {"href": "https://github.com/pr/7"}}}}
        assert _github(master, "pull_request", pull, SECRET) == 200
        summary = _wait_statuses(master, forge, pr_sha, "kmatrix", "failure")
        assert summary[0]["state"] == "pending"
        assert summary[-1]["target_url"].endswith("?branch=refs%2Fpull%2F7%2Fhead")
        builds = master.builds_for(pr_sha)
        assert builds["check/6.1"]["results"] == 2  # the PR's head commit was built
    finally:
        master.stop()


def _gitlab_flow(forge: FakeForge, tmp: Path) -> None:
    master = _master(tmp, forge, "gitlab", "summary")
    try:
        master.start(poller=False)
        head = master.git("rev-parse", "HEAD")
        repo_url = f"http://gitlab.example/{PROJECT}.git"
        push = {"object_kind": "push", "ref": "refs/heads/main", "user_name": "ada",
                "repository": {"name": "vexfs", "url": repo_url},
                "commits": [_commit(master, head, ["status.txt"])]}
        wrong = {"X-Gitlab-Event": "Push Hook", "X-Gitlab-Token": "wrong-token-0123456789"}
        assert _post(master, "gitlab", push, wrong) == 400
        assert master.api("buildsets")["buildsets"] == []
        right = {"X-Gitlab-Event": "Push Hook", "X-Gitlab-Token": SECRET}
        assert _post(master, "gitlab", push, right) == 200
        summary = _wait_statuses(master, forge, head, "kmatrix", "success")
        assert summary[0]["state"] == "pending" and summary[-1]["ref"] == "main"
        assert summary[-1]["target_url"] == f"{master.url}{DASHBOARD}?branch=main"
        assert all(path.startswith(f"/api/v4/projects/{PROJECT_ID}/statuses/")
                   for path, _ in forge.posted if head in path)

        mr_sha = _push_branch(master, "refs/heads/feature", "broken\n", "status: broken")
        author = {"name": "Bob", "email": "bob@example.org"}
        merge = {"object_kind": "merge_request", "object_attributes": {
            "iid": 3, "title": "Break it", "description": "", "state": "opened",
            "action": "open", "target_branch": "main", "source_branch": "feature",
            "source_project_id": PROJECT_ID, "target_project_id": PROJECT_ID,
            "url": "http://gitlab.example/mr/3",
            "last_commit": {"id": mr_sha, "timestamp": WHEN, "author": author},
            "source": {"git_http_url": str(master.origin), "git_ssh_url": ""},
            "target": {"git_http_url": repo_url, "git_ssh_url": "", "name": "vexfs"}}}
        assert _post(master, "gitlab", merge, {**right, "X-Gitlab-Event": "Merge Request Hook"}
                     ) == 200
        _wait_statuses(master, forge, mr_sha, "kmatrix", "failed")
        assert master.builds_for(mr_sha)["check/6.1"]["results"] == 2
    finally:
        master.stop()
