"""`forge:` in .buildbot/kmatrix.yml: parsed with clear errors, turned into Buildbot's hook
dialect, the status reporter and the matrix link."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.buildbot.forge import parse_forge
from pipeline.errors import InputError

WHERE = Path(".buildbot/kmatrix.yml")
ENV = {"KMATRIX_FORGE_SECRET": "x" * 20, "KMATRIX_FORGE_TOKEN": "tok"}


def test_github_defaults_and_dialect() -> None:
    forge = parse_forge({"kind": "github"}, WHERE, ENV)
    assert forge is not None and forge.api_url == "https://api.github.com"
    assert forge.summary and not forge.cells
    dialect = forge.dialect()["github"]
    assert dialect["strict"] and dialect["secret"] == "x" * 20
    assert dialect["pullrequest_ref"] == "head"


def test_gitlab_from_files(tmp_path) -> None:
    (tmp_path / "s").write_text("y" * 16 + "\n")
    (tmp_path / "t").write_text("token\n")
    forge = parse_forge({"kind": "gitlab", "secret_file": str(tmp_path / "s"),
                         "token_file": str(tmp_path / "t"), "statuses": "both",
                         "api_url": "https://git.example/"}, WHERE, {})
    assert forge.dialect() == {"gitlab": {"secret": "y" * 16}}
    assert forge.token == "token" and forge.api_url == "https://git.example"
    assert forge.cells and forge.summary


@pytest.mark.parametrize("raw, env, words", [
    ({"kind": "bitbucket"}, ENV, "is not github or gitlab"),
    ({"kind": "github", "secret": "inline-secret-value"}, ENV, "not accepted"),
    ({"kind": "github"}, {}, "$KMATRIX_FORGE_SECRET is not set"),
    ({"kind": "github"}, {"KMATRIX_FORGE_SECRET": "short", "KMATRIX_FORGE_TOKEN": "t"},
     "at least 16 characters"),
    ({"kind": "github", "statuses": "all"}, ENV, "statuses: 'all' is not one of"),
    ({"kind": "github", "colour": 1}, ENV, "unknown key(s) colour"),
    ({"kind": "github", "secret_file": "/nonexistent/s"}, ENV, "does not exist"),
    ("github", ENV, "expected a mapping"),
])
def test_bad_forge_settings_are_located(raw, env, words) -> None:
    with pytest.raises(InputError) as error:
        parse_forge(raw, WHERE, env)
    assert str(WHERE) in str(error.value) and words in str(error.value)


def test_absent_forge_is_none() -> None:
    assert parse_forge(None, WHERE, {}) is None


def test_matrix_link_and_summary_state() -> None:
    pytest.importorskip("buildbot")
    from pipeline.buildbot.statuses import matrix_link, summary_state

    assert matrix_link("http://ci/", "refs/pull/7/head", "abc") == \
        "http://ci/plugins/wsgi_dashboards/matrix/index.html?branch=refs%2Fpull%2F7%2Fhead"
    assert matrix_link("http://ci/", None, "abc").endswith("?revision=abc")
    assert [summary_state(r, True) for r in (0, 1, 2, 3, 4, 6)] == [
        "success", "success", "failure", "failure", "error", "error"]
    assert summary_state(None, False) == "pending"
