"""A small client of the master's REST API (no Buildbot import): what `pipeline master
status` and `stop` ask instead of trusting pid files."""

from __future__ import annotations

import base64
import json
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

TIMEOUT = 5.0


class MasterApi:
    """GET and control calls to <url>api/v2/, with a login when the master needs one."""

    def __init__(self, url: str, login: tuple[str, str] | None = None) -> None:
        self.url = url if url.endswith("/") else url + "/"
        self.login = login

    @classmethod
    def for_master(cls, basedir: Path) -> MasterApi:
        """The API of the master in `basedir`, as its settings say (bound to 0.0.0.0, it is
        asked on 127.0.0.1)."""
        from pipeline.buildbot.settings import load_settings

        settings = load_settings(basedir, create_secrets=False)
        url = f"http://{settings.connect_host}:{settings.www_port}/"
        login = next(iter(settings.users.items()), None) if settings.auth_required else None
        return cls(url, login)

    def _request(self, path: str, body: dict[str, Any] | None = None) -> Any:
        headers = {"Content-Type": "application/json"}
        if self.login:
            token = base64.b64encode(":".join(self.login).encode()).decode()
            headers["Authorization"] = f"Basic {token}"
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.url + "api/v2/" + path, data=data,
                                         headers=headers)
        with urllib.request.urlopen(request, timeout=TIMEOUT) as reply:
            return json.load(reply)

    def get(self, path: str) -> Any | None:
        """The decoded answer, or None when the master does not answer in time."""
        try:
            return self._request(path)
        except (OSError, ValueError, urllib.error.URLError):
            return None

    def workers(self) -> dict[str, bool] | None:
        """{worker name: connected now}, or None when the master does not answer."""
        answer = self.get("workers")
        if answer is None:
            return None
        return {w["name"]: bool(w.get("connected_to")) for w in answer.get("workers", [])}

    def running_builds(self) -> list[dict[str, Any]] | None:
        answer = self.get("builds?complete=false")
        return None if answer is None else list(answer.get("builds", []))

    def stop_running_builds(self, reason: str, timeout: float) -> list[str] | None:
        """Ask every running build to stop (its job gets SIGTERM and still uploads what it
        has) and wait for them up to `timeout`; the stopped builds, or None when the
        master does not answer."""
        running = self.running_builds()
        if running is None:
            return None
        builders = {b["builderid"]: b["name"]
                    for b in (self.get("builders") or {}).get("builders", [])}
        names = []
        for build in running:
            try:
                self._request(f"builds/{build['buildid']}", {
                    "jsonrpc": "2.0", "method": "stop", "id": 1,
                    "params": {"reason": reason}})
            except (OSError, ValueError, urllib.error.URLError):
                continue
            names.append(f"{builders.get(build['builderid'], build['builderid'])} "
                         f"#{build['number']}")
        deadline = time.monotonic() + timeout
        while running and time.monotonic() < deadline:
            time.sleep(0.5)
            running = self.running_builds() or []
        return names
