"""GitHub / GitLab: the `forge:` block of `.buildbot/kmatrix.yml` (no Buildbot imports).

    forge:
      kind: github                  # or gitlab
      secret_file: /etc/kmatrix/webhook.secret   # or secret_env (default $KMATRIX_FORGE_SECRET)
      token_file: /etc/kmatrix/forge.token       # or token_env (default $KMATRIX_FORGE_TOKEN)
      api_url: https://api.github.com   # GitHub Enterprise: https://HOST/api/v3;
                                        # GitLab: https://gitlab.com or your instance
      statuses: summary             # summary (one per commit) | cells (one per job) | both

The forge's webhook (push and pull/merge-request events) goes to
`<url>change_hook/github` or `<url>change_hook/gitlab`; Buildbot's own hook verifies the
secret (GitHub: the HMAC signature; GitLab: the X-Gitlab-Token header). The hook then is
the change source: the GitPoller is not started, so a push is not seen twice.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.errors import InputError

KINDS = {"github": "https://api.github.com", "gitlab": "https://gitlab.com"}
STATUSES = ("summary", "cells", "both")
SECRET_ENV, TOKEN_ENV = "KMATRIX_FORGE_SECRET", "KMATRIX_FORGE_TOKEN"
KEYS = ("kind", "secret_file", "secret_env", "token_file", "token_env", "api_url", "statuses",
        "context")
# change categories of pull/merge requests (Buildbot's hooks): they build whatever the
# `branches:` filter says, because their branch is refs/pull/N/head or the MR's source
PULL_CATEGORIES = ("pull", "merge_request")


@dataclass(frozen=True)
class Forge:
    """Where changes come from and statuses go to."""

    kind: str
    secret: str
    token: str
    api_url: str
    statuses: str = "summary"
    context: str = "kmatrix"

    @property
    def summary(self) -> bool:
        return self.statuses in ("summary", "both")

    @property
    def cells(self) -> bool:
        return self.statuses in ("cells", "both")

    def dialect(self) -> dict[str, Any]:
        """`change_hook_dialects` entry of Buildbot's hook for this forge."""
        if self.kind == "github":
            return {"github": {"secret": self.secret, "strict": True, "token": self.token,
                               "github_api_endpoint": self.api_url,
                               "pullrequest_ref": "head"}}
        return {"gitlab": {"secret": self.secret}}


def _secret(raw: dict[str, Any], name: str, default_env: str, env: dict[str, str],
            where: str) -> str:
    """A value from `<name>_file` or `$<name>_env` (never from kmatrix.yml itself)."""
    if name in raw:
        raise InputError(f"{where}: forge: a {name} in kmatrix.yml is not accepted",
                         hint=f"use {name}_file: PATH or {name}_env: VARIABLE")
    if raw.get(f"{name}_file"):
        path = Path(str(raw[f"{name}_file"])).expanduser()
        if not path.is_file():
            raise InputError(f"{where}: forge: {name}_file {path} does not exist")
        value = path.read_text().strip()
    else:
        var = str(raw.get(f"{name}_env") or default_env)
        value = env.get(var, "").strip()
        if not value:
            raise InputError(f"{where}: forge: no {name}: ${var} is not set",
                             hint=f"set it, or give {name}_file: PATH")
    return value


def parse_forge(raw: Any, where: Path, env: dict[str, str] | None = None) -> Forge | None:
    """The `forge:` mapping (None when absent), with located errors."""
    if raw is None:
        return None
    env = dict(os.environ if env is None else env)
    if not isinstance(raw, dict):
        raise InputError(f"{where}: forge: expected a mapping with kind: github or gitlab")
    unknown = sorted(set(raw) - set(KEYS) - {"secret", "token"})
    if unknown:
        raise InputError(f"{where}: forge: unknown key(s) {', '.join(unknown)}",
                         hint=f"known: {', '.join(KEYS)}")
    kind = str(raw.get("kind", "")).strip().lower()
    if kind not in KINDS:
        raise InputError(f"{where}: forge: kind: {raw.get('kind')!r} is not github or gitlab")
    statuses = str(raw.get("statuses", "summary"))
    if statuses not in STATUSES:
        raise InputError(f"{where}: forge: statuses: {statuses!r} is not one of "
                         f"{', '.join(STATUSES)}")
    secret = _secret(raw, "secret", SECRET_ENV, env, str(where))
    if len(secret) < 16:
        raise InputError(f"{where}: forge: the webhook secret must be at least 16 characters")
    return Forge(kind=kind, secret=secret,
                 token=_secret(raw, "token", TOKEN_ENV, env, str(where)),
                 api_url=str(raw.get("api_url") or KINDS[kind]).rstrip("/"),
                 statuses=statuses, context=str(raw.get("context") or "kmatrix"))
